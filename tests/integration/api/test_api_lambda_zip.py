"""The built Lambda zip, run the way Lambda runs it: ``python3.12 -m awslambdaric api.lambda_handler.handler``
behind a Runtime API emulator, in the unzipped package, with only the function's environment.

The emulator and the runtime environment (awslambdaric + boto3 on Python 3.12, like AWS's images) are the
project's LocalStack executor pieces: ``infra.aws_lambda.runtime_api`` and ``infra.aws_lambda.localstack_venvs``.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import docs
from infra.aws_lambda import package_build
from tests.datasets import breast_cancer_record
from tests.integration.api.browser import chromium_page, require_chromium
from tests.integration.api.conftest import ADMIN_KEY, CHAMPION_MODEL, api_env
from tests.integration.api.docs_browser import check_docs, rest_v1_gateway, served_api
from tests.support.mlflow_server import RegistryStack
from tests.unit.api.lambda_events import EVENT_KINDS, event, response_body, response_headers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

runtime_api = pytest.importorskip("infra.aws_lambda.runtime_api", reason="the Lambda Runtime API emulator is missing")


@pytest.fixture(scope="module")
def function(
    code_dir: Path, runtime_python: Path, registry_stack: RegistryStack, champion: dict[str, Any]
) -> Iterator[tuple[Any, float]]:
    """One execution environment of the function; yields it and its cold start (start to first response)."""
    env = api_env(
        registry_stack,
        CHAMPION_MODEL,
        MLOPS_API_POLL_INTERVAL_S="30",
        MLOPS_API_CACHE_DIR=str(code_dir.parent / "function-cache"),
    )
    fn = runtime_api.LambdaProcess(
        code_dir,
        "api.lambda_handler.handler",
        python=runtime_python,
        env=env,
        timeout=30,
        init_timeout=120,
        log_path=code_dir.parent / "lambda.log",
    )
    started = time.perf_counter()
    fn.start()
    try:
        first = fn.invoke(event("http_v2", "GET", "/ready"))
        cold = time.perf_counter() - started
        assert not first.is_error, (first.payload, fn.logs()[-3000:])
        yield fn, cold
    finally:
        fn.stop()


def test_builds_are_byte_identical_and_fit_lambda(built_zips: tuple[Path, Path]) -> None:
    first, second = built_zips
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {package_build.ZIP_EPOCH}
    assert sum(i.file_size for i in infos) < package_build.UNZIPPED_LIMIT * 0.9
    tops = {n.split("/", 1)[0] for n in names}
    assert {"api", "ml", "fastapi", "mangum", "sklearn", "skops", "numpy", "pydantic"} <= tops
    assert not tops & {"pandas", "mlflow", "uvicorn", "uvloop", "boto3", "botocore", "airflow"}
    assert "infra/aws_lambda/package_build.py" not in names and "ml/spec.py" in names and "ml/settings.py" not in names
    assert not [n for n in names if "/tests/" in n]
    assert "api/__pycache__/main.cpython-312.pyc" in names  # precompiled for the python3.12 runtime


def test_cold_start_loads_the_champion(function: tuple[Any, float], champion: dict[str, Any]) -> None:
    fn, cold = function
    print(f"cold start (process start to first response): {cold:.2f} s")
    ready = fn.invoke(event("rest_v1", "GET", "/ready"))
    body = response_body(ready.json())
    assert body["ready"] is True
    assert body["model"]["version"] == champion["decision"]["version"]
    assert cold < 30


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_each_event_kind_through_the_runtime(function: tuple[Any, float], kind: str) -> None:
    fn, _ = function
    result = fn.invoke(event(kind, "POST", "/predict", breast_cancer_record()))
    assert not result.is_error, result.payload
    response = result.json()
    assert response["statusCode"] == 200, response
    assert response_headers(response)["content-type"] == "application/json"
    body = response_body(response)
    assert body["model"]["name"] == CHAMPION_MODEL and body["label"] in ("benign", "malignant")

    bad = fn.invoke(event(kind, "POST", "/predict/batch", {"records": []})).json()
    assert bad["statusCode"] == 422
    assert response_body(bad)["detail"][0]["field"] == "records"

    denied = fn.invoke(event(kind, "POST", "/model/reload")).json()
    assert denied["statusCode"] == 401
    allowed = fn.invoke(event(kind, "POST", "/model/reload", headers={"X-API-Key": ADMIN_KEY})).json()
    assert allowed["statusCode"] == 200 and response_body(allowed)["outcome"] == "unchanged"


def test_warm_invocations_are_fast(function: tuple[Any, float]) -> None:
    fn, _ = function
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        result = fn.invoke(event("function_url", "POST", "/predict", breast_cancer_record()))
        durations.append(time.perf_counter() - started)
        assert result.json()["statusCode"] == 200
    durations.sort()
    print(f"warm invocation p50 {durations[10] * 1000:.1f} ms")
    assert durations[10] < 1.0
    log = fn.logs()
    assert '"logger":"api.model_store"' in log and "loaded models:/" in log
    assert log.count("loaded models:/") == 1  # loaded once per environment, not per invocation


def test_zip_ships_the_docs_assets(lambda_zip: Path) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        sizes = {i.filename: i.file_size for i in archive.infolist()}
    for name in docs.ASSET_TYPES:
        assert sizes.get(f"{docs.ASSET_PACKAGE}/static/{name}", 0) > 100_000, name
    assert "api/docs.py" in sizes


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_docs_and_their_assets_through_the_runtime(function: tuple[Any, float], kind: str) -> None:
    fn, _ = function
    for path in ("/docs", "/redoc"):
        page = fn.invoke(event(kind, "GET", path)).json()
        assert page["statusCode"] == 200 and "openapi.json" in page["body"]
    for name, media_type in docs.ASSET_TYPES.items():
        asset = fn.invoke(event(kind, "GET", f"/docs/assets/{name}")).json()
        assert asset["statusCode"] == 200
        assert response_headers(asset)["content-type"] == media_type
        assert asset["isBase64Encoded"] is False and len(asset["body"]) > 100_000


def test_docs_render_in_chromium_behind_a_rest_v1_stage(function: tuple[Any, float], tmp_path: Path) -> None:
    """The built zip's /docs and /redoc in headless Chromium behind a REST-v1-like ``/prod`` stage prefix."""
    require_chromium()
    fn, _ = function

    def invoke(lambda_event: dict[str, Any]) -> dict[str, Any]:
        result = fn.invoke(lambda_event)
        assert not result.is_error, result.payload
        answer: dict[str, Any] = result.json()
        return answer

    with rest_v1_gateway(invoke, stage="prod") as base, chromium_page() as page:
        check_docs(page, base, served_api(base), tmp_path, "lambda-zip-rest-v1")
