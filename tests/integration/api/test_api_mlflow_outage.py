"""Serving while MLflow hangs: a real MLflow server SIGSTOPped (it accepts connections, never answers).

Through the API process (uvicorn) and through the built Lambda zip (awslambdaric behind the Runtime API
emulator, as in ``test_api_lambda_zip.py``):

* (a) while requests flow, every request answers 200 within :data:`PROCESS_BOUND_S` (process) or
  :data:`LAMBDA_BOUND_S` (Lambda invocation, emulator included), and /ready notices the outage within
  the check timeout;
* (b) a process or execution environment started while MLflow is stopped serves the last champion from
  the champion cache (the process's local copy; a new Lambda environment: the S3 copy the process published);
* (c) restart-to-serving of the process (start to the first 200 on /predict) with the cache, MLflow reachable
  and MLflow stopped, printed next to the same restart without a cache.

The checks run with ``MLOPS_API_CHECK_TIMEOUT_S=1`` and the default 10 s download timeout (the setting that
held requests for 10 s before).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from api.champion_cache import SnapshotLayout
from infra.catalog import CHAMPION_CACHE_URI
from tests.datasets import breast_cancer_record
from tests.integration.api.api_stack import REPO, ApiProcess
from tests.integration.api.conftest import CHAMPION_MODEL, api_env
from tests.support.mlflow_server import QUIET, RegistryStack
from tests.support.ports import free_port
from tests.support.waiting import wait_until
from tests.unit.api.lambda_events import event, response_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

runtime_api = pytest.importorskip("infra.aws_lambda.runtime_api", reason="the Lambda Runtime API emulator is missing")

PAUSE_S = 8.0  # how long MLflow stays SIGSTOPped while requests flow
PROCESS_BOUND_S = 0.5  # slowest acceptable /predict of the process during the pause
LAMBDA_BOUND_S = 1.0  # slowest acceptable invocation (emulator round trip included) during the pause
NOTICE_BOUND_S = 5.0  # /ready reports the registry unreachable within: poll 1 s + check timeout 1 s + margin
SERVE_BOUND_S = 15.0  # a restart serves within this (measured ~1-3 s; the machine may be busy)
OUTAGE_KNOBS = {
    "MLOPS_API_POLL_INTERVAL_S": "1",
    "MLOPS_API_RETRY_INTERVAL_S": "1",
    "MLOPS_API_CHECK_TIMEOUT_S": "1",
    "MLOPS_API_REGISTRY_TIMEOUT_S": "10",
}


def outage_env(stack: RegistryStack, cache_dir: Path, **extra: str) -> dict[str, str]:
    """The API's environment with the outage knobs and a champion cache directory of the test's own."""
    return api_env(stack, CHAMPION_MODEL, **OUTAGE_KNOBS, MLOPS_API_CACHE_DIR=str(cache_dir), **extra)


def spawn_api(env: dict[str, str], log: Path) -> ApiProcess:
    """``uvicorn api.main:app`` with exactly ``env`` (plus PATH), not waiting for anything."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log",
    ]  # fmt: skip
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **QUIET, **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return ApiProcess(proc, port, log)


def first_prediction(env: dict[str, str], log: Path, deadline_s: float = 40.0) -> tuple[float | None, ApiProcess]:
    """Start the API and return the seconds from process start to the first 200 on /predict (None: never)."""
    record = breast_cancer_record()
    started = time.perf_counter()
    api = spawn_api(env, log)
    with httpx.Client(base_url=api.url, timeout=5) as http:
        while time.perf_counter() - started < deadline_s:
            if api.proc.poll() is not None:
                raise AssertionError(f"the API exited with {api.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http.post("/predict", json=record).status_code == 200:
                    return time.perf_counter() - started, api
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    return None, api


def kill(api: ApiProcess) -> None:
    """SIGKILL, as a crash would end it."""
    if api.proc.poll() is None:
        api.proc.send_signal(signal.SIGKILL)
        api.proc.wait(10)


@contextmanager
def lambda_environment(code_dir: Path, python: Path, env: dict[str, str], log: Path) -> Iterator[Any]:
    """One execution environment of the built zip (not started: the caller times its start)."""
    fn = runtime_api.LambdaProcess(
        code_dir, "api.lambda_handler.handler", python=python, env=env, timeout=60, init_timeout=120, log_path=log
    )
    try:
        yield fn
    finally:
        fn.stop()


def invoke(fn: Any, method: str, path: str, body: Any = None) -> tuple[dict[str, Any], float]:
    """One Function URL invocation: the HTTP response (statusCode, body...) and its duration."""
    started = time.perf_counter()
    result = fn.invoke(event("function_url", method, path, body))
    took = time.perf_counter() - started
    assert not result.is_error, (result.payload, fn.logs()[-3000:])
    return result.json(), took


# ------------------------------------------------------------------------------------------------- (a)
def test_a_the_process_answers_every_request_while_mlflow_is_paused(
    registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path
) -> None:
    api = spawn_api(outage_env(registry_stack, api_root / "a-process-cache"), api_root / "a-process.log")
    try:
        http = httpx.Client(base_url=api.url, timeout=60)
        wait_until(lambda: _ok(http, "/ready"), 60, what="the API to serve")
        latencies: list[float] = []
        statuses: set[int] = set()
        noticed: float | None = None
        record = breast_cancer_record()
        with registry_stack.paused_mlflow():
            paused = time.monotonic()
            while time.monotonic() - paused < PAUSE_S:
                started = time.perf_counter()
                response = http.post("/predict", json=record)
                latencies.append(time.perf_counter() - started)
                statuses.add(response.status_code)
                if noticed is None and http.get("/ready").json()["registry"]["reachable"] is False:
                    noticed = time.monotonic() - paused
                time.sleep(0.05)
            ready = http.get("/ready").json()
            info = http.get("/model").json()
        print(
            f"\nprocess, MLflow paused {PAUSE_S:.0f} s: {len(latencies)} requests, statuses {sorted(statuses)}, "
            f"max {max(latencies) * 1000:.1f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms; "
            f"/ready noticed after {noticed if noticed is None else round(noticed, 2)} s"
        )
        assert statuses == {200}
        assert max(latencies) < PROCESS_BOUND_S
        assert noticed is not None and noticed < NOTICE_BOUND_S
        assert ready["ready"] is True and ready["model"]["version"] == champion["decision"]["version"]
        assert "no answer within 1 s" in ready["registry"]["last_error"]
        assert info["loaded_from"]["kind"] == "registry" and info["registry"]["reachable"] is False
        wait_until(lambda: http.get("/ready").json()["registry"]["reachable"] is True, 15, what="/ready to recover")
        http.close()
    finally:
        kill(api)


def test_a_the_lambda_answers_every_invocation_while_mlflow_is_paused(
    code_dir: Path, runtime_python: Path, registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path
) -> None:
    env = outage_env(registry_stack, api_root / "a-lambda-cache")
    with lambda_environment(code_dir, runtime_python, env, api_root / "a-lambda.log") as fn:
        fn.start()
        assert response_body(invoke(fn, "GET", "/ready")[0])["ready"] is True
        durations: list[float] = []
        statuses: set[int] = set()
        record = breast_cancer_record()
        with registry_stack.paused_mlflow():
            paused = time.monotonic()
            while time.monotonic() - paused < PAUSE_S:
                response, took = invoke(fn, "POST", "/predict", record)
                durations.append(took)
                statuses.add(response["statusCode"])
                time.sleep(0.05)
            ready = response_body(invoke(fn, "GET", "/ready")[0])
        print(
            f"\nLambda, MLflow paused {PAUSE_S:.0f} s: {len(durations)} invocations, statuses {sorted(statuses)}, "
            f"max {max(durations) * 1000:.1f} ms, median {sorted(durations)[len(durations) // 2] * 1000:.1f} ms"
        )
        assert statuses == {200}
        assert max(durations) < LAMBDA_BOUND_S
        assert ready["registry"]["reachable"] is False and "no answer within 1 s" in ready["registry"]["last_error"]
        assert ready["model"]["loaded_from"]["kind"] == "registry"
        assert fn.logs().count("loaded models:/") == 1  # one environment, one load: nothing restarted


# ------------------------------------------------------------------------------------------------- (b)
def test_b_a_process_started_while_mlflow_is_paused_serves_the_cached_champion(
    registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path
) -> None:
    cache = api_root / "b-process-cache"
    env = outage_env(registry_stack, cache)
    seconds, first = first_prediction(env, api_root / "b-first.log")
    kill(first)  # it loaded the champion from MLflow and wrote the cache
    assert seconds is not None
    with registry_stack.paused_mlflow():
        seconds, api = first_prediction(env, api_root / "b-restart.log")
        try:
            assert seconds is not None, "the restarted process never served while MLflow was paused"
            with httpx.Client(base_url=api.url, timeout=10) as http:
                ready = http.get("/ready").json()
                assert ready["ready"] is True and ready["model"]["version"] == champion["decision"]["version"]
                assert ready["model"]["loaded_from"]["kind"] == "cache"
                assert ready["model"]["loaded_from"]["location"].startswith(str(cache))
                assert "champion cache" in ready["message"]
                wait_until(
                    lambda: http.get("/ready").json()["registry"]["reachable"] is False, 10, what="the failed check"
                )
                assert http.get("/model").json()["registry"]["reachable"] is False
        finally:
            kill(api)
    print(f"\nprocess started while MLflow is paused: first 200 after {seconds:.2f} s, from the cache")


def test_b_a_lambda_environment_started_while_mlflow_is_paused_serves_the_s3_copy(
    code_dir: Path, runtime_python: Path, registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path
) -> None:
    # an API process loads the champion and publishes it to the stack's S3 (what the stack's API process does)
    seconds, publisher = first_prediction(outage_env(registry_stack, api_root / "b-publisher"), api_root / "b-pub.log")
    assert seconds is not None
    s3 = boto3.client("s3", endpoint_url=registry_stack.s3_url, **_keys(registry_stack))
    bucket, prefix = CHAMPION_CACHE_URI.removeprefix("s3://").split("/", 1)
    pointer_key = f"{prefix}/{SnapshotLayout(CHAMPION_MODEL, 'champion').pointer_key}"
    deadline = time.monotonic() + 30
    while not (published := _exists(s3, bucket, pointer_key)) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill(publisher)

    env = outage_env(registry_stack, api_root / "b-new-environment")  # an empty /tmp
    with registry_stack.paused_mlflow(), lambda_environment(code_dir, runtime_python, env, api_root / "b.log") as fn:
        started = time.perf_counter()
        fn.start()
        response, _ = invoke(fn, "POST", "/predict", breast_cancer_record())
        cold = time.perf_counter() - started
        assert response["statusCode"] == 200, (f"S3 copy published: {published}", response, fn.logs()[-3000:])
        assert response_body(response)["model"]["version"] == champion["decision"]["version"]
        ready = response_body(invoke(fn, "GET", "/ready")[0])
        assert ready["model"]["loaded_from"]["kind"] == "cache"
        assert ready["model"]["loaded_from"]["location"].startswith(CHAMPION_CACHE_URI)
    print(f"\nnew Lambda environment while MLflow is paused: cold start to first 200 in {cold:.2f} s, from S3")


# ------------------------------------------------------------------------------------------------- (c)
def test_c_restart_to_serving_with_the_cache(
    registry_stack: RegistryStack, champion: dict[str, Any], api_root: Path
) -> None:
    cache = api_root / "c-cache"
    env = outage_env(registry_stack, cache)
    figures: dict[str, float | None] = {}

    cold, api = first_prediction(outage_env(registry_stack, api_root / "c-no-cache"), api_root / "c-0.log")
    kill(api)
    figures["no cache, MLflow reachable"] = cold
    seconds, api = first_prediction(env, api_root / "c-1.log")  # fills the cache
    kill(api)

    seconds, api = first_prediction(env, api_root / "c-2.log")
    kill(api)
    figures["cache, MLflow reachable"] = seconds

    with registry_stack.paused_mlflow():
        seconds, api = first_prediction(env, api_root / "c-3.log")
        kill(api)
    figures["cache, MLflow paused"] = seconds

    print("\nrestart (process start to first 200 on /predict, after SIGKILL):")
    for what, value in figures.items():
        print(f"  {what:28s} {'never' if value is None else f'{value:.2f} s'}")
    assert figures["cache, MLflow reachable"] is not None and figures["cache, MLflow reachable"] < SERVE_BOUND_S
    assert figures["cache, MLflow paused"] is not None and figures["cache, MLflow paused"] < SERVE_BOUND_S

    # what the restarted process says about it: from the cache, then confirmed by the registry
    seconds, api = first_prediction(env, api_root / "c-4.log")
    try:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            assert http.get("/model").json()["loaded_from"]["kind"] == "cache"
            wait_until(
                lambda: http.get("/ready").json()["model"]["registry_confirmed_at"] is not None, 10, what="check"
            )
            assert http.get("/ready").json()["registry"]["reachable"] is True
    finally:
        kill(api)


def _ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _keys(stack: RegistryStack) -> dict[str, str]:
    env = stack.env
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True
