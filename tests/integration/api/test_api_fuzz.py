"""Schemathesis fuzzes every operation of the API's OpenAPI document against a real API process and champion.

Positive and negative generation (``--mode all``), the examples, coverage and fuzzing phases, every check
Schemathesis has; the test asserts no server error (5xx) and no answer that breaks its documented schema, and
prints the run's summary (cases per operation, outcome of every check). It runs the ``st`` command line (the
``schemathesis`` package, a test dependency) with a fixed seed, so a run is reproducible.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import ADMIN_KEY, StartApi
from tests.support.waiting import wait_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Failures (Schemathesis' failure types, as its JSON report names them) that must not occur: a 5xx, and any
#: answer outside the documented schema (body, status code, media type, malformed JSON). Others are printed:
#: ``IgnoredAuth`` flags POST /model/reload answering 200 to a bad ``Authorization`` header sent together with
#: the run's valid ``X-API-Key`` (either scheme suffices: correct).
ASSERTED = (
    "ServerError",  # check not_a_server_error
    "JsonSchemaError",  # response_schema_conformance
    "MalformedJson",
    "UndefinedStatusCode",  # status_code_conformance
    "UndefinedContentType",  # content_type_conformance
    "MissingContentType",
    "MalformedMediaType",
)
MAX_EXAMPLES = 40
SEED = 20261130


def _st() -> str:
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (a test dependency)")
    found = Path(sys.executable).with_name("st")
    return str(found) if found.exists() else (shutil.which("st") or "st")


def _failed_checks(report: dict[str, Any]) -> Counter[str]:
    """Failing cases per failure type (``failures[].type`` of Schemathesis' JSON report), e.g. ``ServerError``."""
    failed: Counter[str] = Counter()
    for group in report.get("failures", []):
        failed[str(group.get("type"))] += int(group.get("count") or 0)
    return failed


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    start_api_process: StartApi, champion: dict[str, Any], tmp_path: Path
) -> None:
    api = start_api_process()
    wait_http(f"{api.url}/ready", 120, api.proc, api.log)
    report_path = tmp_path / "schemathesis.json"
    cmd = [
        _st(), "run", f"{api.url}/openapi.json",
        "--mode", "all", "--checks", "all", "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1", "--no-shrink",
        "--request-timeout", "30", "--continue-on-failure",
        "--header", f"X-API-Key: {ADMIN_KEY}",
        "--report", "json", "--report-json-path", str(report_path),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=500, cwd=tmp_path)  # its .schemathesis/ cache
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    print(output[-6000:])
    assert report_path.exists(), output[-4000:]
    report = json.loads(report_path.read_text())
    failed = _failed_checks(report)
    generated = int(report["test_cases"]["generated"])
    operations = report["operations"]
    print(
        f"\nschemathesis {report['schemathesis_version']}: {generated} cases on {operations['tested']} of "
        f"{operations['selected']} operations in {seconds:.0f} s (exit {done.returncode}, {report['stop_reason']})"
    )
    for group in report.get("failures", []):
        print(f"  {group['type']}: {group['count']} case(s), {group['title']} ({', '.join(group['operations'])})")
    api_log = api.log.read_text()
    assert "Traceback" not in api_log, api_log[-3000:]
    errors_at = output.find("ERRORS")
    assert report["complete"] and not report.get("errors"), output[errors_at : errors_at + 4000]
    assert operations["tested"] == operations["selected"] and operations["errored"] == 0, operations
    for name in ASSERTED:
        assert failed[name] == 0, [g for g in report["failures"] if g["type"] == name]
    assert generated > 100
