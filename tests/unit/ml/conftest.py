"""Fixtures for the ML library's unit tests: moto's S3 server and a real MLflow tracking server (SQLite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from moto.server import ThreadedMotoServer

from ml.lake import Lake
from ml.settings import MLSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's in-process S3 server (fast, in memory, accepts any key): unit tests only."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` process with a SQLite backend and local artifacts (proxied)."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination", str(root / "artifacts"),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"mlflow server not healthy in 90 s: {(root / 'server.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(15)


@pytest.fixture
def ml_env(
    s3_server: str, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> MLSettings:
    """Environment for one test: its own bucket, experiment, model name and Optuna SQLite file."""
    name = request.node.name.replace("[", "_").replace("]", "").lower()[:40]
    values = {
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLOPS_LAKE_BUCKET": f"lake-{abs(hash(name)) % 10**8}",
        "MLOPS_EXPERIMENT": f"exp-{name}-{time.time_ns()}",
        "MLOPS_MODEL_NAME": f"model-{name}-{time.time_ns()}",
        "MLOPS_OPTUNA_STORAGE": f"sqlite:///{tmp_path}/optuna.db",
        "MLOPS_N_TRIALS": "6",
        "MLOPS_CV_FOLDS": "3",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    # An earlier test may have set a process-wide tracking URI, which wins over the environment.
    mlflow.set_tracking_uri(mlflow_server)
    return MLSettings()


@pytest.fixture
def lake(ml_env: MLSettings) -> Lake:
    """An empty lake bucket for one test."""
    lake = Lake.from_env(ml_env.lake_bucket)
    lake.ensure_bucket()
    return lake
