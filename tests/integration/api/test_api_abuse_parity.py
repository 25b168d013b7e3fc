"""The same bad requests through the API process and through the built Lambda zip answer the same.

The process is ``uvicorn api.main:app`` (as the container runs it); the Lambda is the zip from
``python -m infra.aws_lambda.package_build`` run by ``python3.12 -m awslambdaric`` behind the project's Runtime API
emulator, sent Function URL (body base64-encoded, as Function URLs do for non-text types) and REST v1 events. Status,
body and ``Content-Type`` must be identical. The numbers are the issue's cases.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.datasets import breast_cancer_record
from tests.integration.api.api_stack import ApiProcess, start_api
from tests.integration.api.conftest import CHAMPION_MODEL, api_env
from tests.support.mlflow_server import RegistryStack
from tests.support.waiting import wait_http
from tests.unit.api.lambda_events import event, response_headers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

runtime_api = pytest.importorskip("infra.aws_lambda.runtime_api", reason="the Lambda Runtime API emulator is missing")

GOOD = breast_cancer_record()
JSON_HEADERS = {"content-type": "application/json"}
FRONTS = ("function_url", "rest_v1")
BIG = b"100000000000000000000"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _record_with(key: str, raw: bytes) -> bytes:
    """GOOD as JSON with ``key`` set to the raw JSON text ``raw``."""
    return _dumps(GOOD | {key: "@@"}).replace(b'"@@"', raw)


MULTIPART = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="r.json"\r\nContent-Type: application/json'
    b"\r\n\r\n" + _dumps(GOOD) + b"\r\n--xyz--\r\n"
)
# (case, method, path, body, headers, expected status)
CASES: list[tuple[str, str, str, bytes | None, dict[str, str], int]] = [
    ("valid record", "POST", "/predict", _dumps(GOOD), JSON_HEADERS, 200),
    ("(1) 10**20 for a feature", "POST", "/predict", _record_with("mean_radius", BIG), JSON_HEADERS, 422),
    ("(1) 10**20 in an unknown field", "POST", "/predict", _record_with("extra", BIG), JSON_HEADERS, 422),
    ("(1) 10**20 in a batch", "POST", "/predict/batch", b'{"records": [' + _record_with("mean_area", BIG) + b"]}",
     JSON_HEADERS, 422),
    ("(2) 400 records x 1,000 unknown keys", "POST", "/predict/batch",
     _dumps({"records": [{f"key{i:03d}": 1 for i in range(1000)}] * 400}), JSON_HEADERS, 422),
    ("(2) 1,000 records x 60 unknown keys", "POST", "/predict/batch",
     _dumps({"records": [GOOD | {f"unknown_{i:02d}": 1 for i in range(60)}] * 1000}), JSON_HEADERS, 422),
    ("(3) text/plain", "POST", "/predict", _dumps(GOOD), {"content-type": "text/plain"}, 415),
    ("(3) image/png", "POST", "/predict/batch", _dumps({"records": [GOOD]}), {"content-type": "image/png"}, 415),
    ("(3) no Content-Type", "POST", "/predict", _dumps(GOOD), {}, 415),
    ("(4) JSON as form-urlencoded", "POST", "/predict", _dumps(GOOD),
     {"content-type": "application/x-www-form-urlencoded"}, 415),
    ("(4) JSON as multipart", "POST", "/predict", _dumps(GOOD), {"content-type": "multipart/form-data"}, 415),
    ("(4) a real multipart body", "POST", "/predict/batch", MULTIPART,
     {"content-type": "multipart/form-data; boundary=xyz"}, 415),
    ("(6) NaN in a batch", "POST", "/predict/batch", b'{"records": [' + _record_with("mean_texture", b"NaN") + b"]}",
     JSON_HEADERS, 422),
    ("(6) bidi and ANSI keys", "POST", "/predict/batch",
     _dumps({"records": [GOOD | {"mean\u202eradius": "\x1b[2J"}]}), JSON_HEADERS, 422),
    ("(6) HEAD /health", "HEAD", "/health", None, {}, 200),
    ("(6) HEAD /ready", "HEAD", "/ready", None, {}, 200),
    ("(6) unusual method", "PROPFIND", "/predict", None, {}, 405),
]  # fmt: skip


@pytest.fixture(scope="module")
def api_process(registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path) -> Iterator[ApiProcess]:
    """The API as a process serving the session's champion."""
    env = api_env(registry_stack, CHAMPION_MODEL, MLOPS_API_CACHE_DIR=str(api_root / "cache-abuse"))
    api = start_api(env, api_root / "api-abuse.log")
    try:
        wait_http(f"{api.url}/ready", 120, api.proc, api.log)
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def lambda_fn(code_dir: Path, runtime_python: Path, registry_stack: RegistryStack, champion: dict[str, Any]) -> Any:
    """One execution environment of the built zip, with the function's own settings (no body limit set)."""
    env = api_env(
        registry_stack,
        CHAMPION_MODEL,
        MLOPS_API_POLL_INTERVAL_S="30",
        MLOPS_API_CACHE_DIR=str(code_dir.parent / "function-cache-abuse"),
    )
    fn = runtime_api.LambdaProcess(
        code_dir,
        "api.lambda_handler.handler",
        python=runtime_python,
        env=env,
        timeout=30,
        init_timeout=120,
        log_path=code_dir.parent / "lambda-abuse.log",
    )
    fn.start()
    try:
        first = fn.invoke(event("http_v2", "GET", "/ready"))
        assert not first.is_error, (first.payload, fn.logs()[-3000:])
        yield fn
    finally:
        fn.stop()


def _through_process(api: ApiProcess, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        response = http.request(method, path, content=body, headers=headers)
    return response.status_code, response.text, response.headers.get("content-type")


def _through_lambda(fn: Any, kind: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    given: dict[str, str | None] = {"Content-Type": None} | dict(headers)
    result = fn.invoke(event(kind, method, path, body, headers=given))
    assert not result.is_error, result.payload[:2000]
    response = result.json()
    text = response.get("body") or ""
    if response.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return response["statusCode"], text, response_headers(response).get("content-type")


def test_bad_requests_answer_alike_through_the_process_and_the_lambda(api_process: ApiProcess, lambda_fn: Any) -> None:
    """(1)-(4), (6): one status, body and Content-Type per request, on the process and both Lambda fronts."""
    rows = []
    for case, method, path, body, headers, expected in CASES:
        started = time.perf_counter()
        process = _through_process(api_process, method, path, body, headers)
        process_ms = (time.perf_counter() - started) * 1000
        status, text, _ = process
        assert status == expected, (case, text[:500])
        if text:
            answer = json.loads(text)
            if status >= 400 and status != 405:
                assert answer["detail"] and all(item["field"] for item in answer["detail"]), (case, answer)
        for kind in FRONTS:
            assert _through_lambda(lambda_fn, kind, method, path, body, headers) == process, (case, kind)
        rows.append(f"{case:<42} {status}  {len(body or b''):>9,} B  process {process_ms:7.1f} ms  {text[:70]!r}")
    print("\n" + "\n".join(rows))


def test_the_lambda_refuses_bodies_above_its_6_mb_payload_limit(api_process: ApiProcess, lambda_fn: Any) -> None:
    """(6) The issue's 6.6 MB batch: the process refuses it unparsed (too_complex), the Lambda as too large."""
    body = _dumps({"records": [{f"key{i:03d}": 1 for i in range(1000)}] * 600})
    assert 6 * 1024 * 1024 < len(body) < 10 * 1024 * 1024
    status, text, _ = _through_process(api_process, "POST", "/predict/batch", body, JSON_HEADERS)
    assert status == 422 and json.loads(text)["detail"][0]["type"] == "too_complex"
    for kind in FRONTS:
        status, text, _ = _through_lambda(lambda_fn, kind, "POST", "/predict/batch", body, JSON_HEADERS)
        item = json.loads(text)["detail"][0]
        assert status == 422 and item["type"] == "too_large" and "6291456 bytes" in item["msg"], (kind, item)
