"""Schemathesis fuzzes every operation of the API's OpenAPI document against a real API process and champions.

The process serves a champion of each task type (breast cancer, binary; wine, multi-class; diabetes,
regression with an integer feature and a coded category), so every per-model operation is fuzzed with its
own generated schema.

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

import httpx
import pytest

from ml.spec import get_spec
from tests.integration.api.api_stack import train_champion
from tests.integration.api.conftest import ADMIN_KEY, StartApi
from tests.support.mlflow_server import RegistryStack
from tests.support.waiting import wait_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Failures (Schemathesis' failure types, as its JSON report names them) that must not occur: a 5xx, any
#: answer outside the documented schema (body, status code, media type, malformed JSON), a schema-valid
#: request refused (e.g. ``66.0`` for an integer feature: JSON Schema's ``integer`` allows it), and a reload
#: that ignores a wrong ``Authorization`` header sent with a right ``X-API-Key``. Others are printed.
ASSERTED = (
    "ServerError",  # check not_a_server_error
    "JsonSchemaError",  # response_schema_conformance
    "MalformedJson",
    "UndefinedStatusCode",  # status_code_conformance
    "UndefinedContentType",  # content_type_conformance
    "MissingContentType",
    "MalformedMediaType",
    "RejectedPositiveData",  # positive_data_acceptance
    "IgnoredAuth",  # ignored_auth
)
#: The other task types' champions, trained by the real pipeline next to the breast cancer one:
#: (dataset, registered model, first-model threshold: a floor for F1, a ceiling for RMSE).
TASK_CHAMPIONS = (("wine", "api_it_wine", 0.5), ("diabetes", "api_it_diabetes", 1000.0))
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


@pytest.fixture(scope="module")
def task_champions(registry_stack: RegistryStack) -> list[str]:
    """A multi-class and a regression champion in the session's registry; their dataset names."""
    for dataset, model_name, threshold in TASK_CHAMPIONS:
        spec = get_spec(dataset)
        result = train_champion(registry_stack, model_name, spec.to_json(), min_champion_score=threshold)
        assert result["decision"]["promoted"], result["decision"]
    return [dataset for dataset, _, _ in TASK_CHAMPIONS]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    start_api_process: StartApi, champion: dict[str, Any], task_champions: list[str], tmp_path: Path
) -> None:
    expected = {"breast_cancer", *task_champions}
    api = start_api_process(MLOPS_API_MODELS=",".join(sorted(expected)))
    wait_http(f"{api.url}/ready", 120, api.proc, api.log)
    # every model listed and loaded: the schemas Schemathesis reads are the loaded models' own (a model still
    # loading is documented with a placeholder body that its 422 would then contradict)
    deadline = time.monotonic() + 60

    def loaded() -> set[str]:
        return {m["name"] for m in httpx.get(f"{api.url}/models").json()["models"] if m.get("version")}

    while not expected <= (served := loaded()):
        assert time.monotonic() < deadline, f"the API serves {served} loaded, not {expected}"
        time.sleep(1)
    operations_of = json.dumps(httpx.get(f"{api.url}/openapi.json").json()["paths"])
    assert all(f"/models/{name}/predict" in operations_of for name in expected)
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
