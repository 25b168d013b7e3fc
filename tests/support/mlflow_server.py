"""A real ``mlflow server`` process, alone or with moto's S3 behind it (the registry stack).

* :func:`start_mlflow_server`: ``mlflow server`` with a SQLite backend (unless one is given), artifacts proxied
  to a local directory or to S3, one worker, no job runner; waits for ``/health``.
* :func:`start_registry_stack`: moto S3 (unless an endpoint is given) with the ``mlflow`` and serving buckets,
  and an MLflow server whose artifacts go to ``s3://mlflow/artifacts``; stoppable, restartable on the same port
  and data, and pausable (SIGSTOP) to simulate a hung registry.

Everything listens on free ports of 127.0.0.1 and writes under the caller's directory. Start them once per
session (a fixture of the tier's ``conftest.py``), as starting MLflow takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import catalog
from tests.support.moto_s3 import AWS_ENV, s3_client, start_moto_s3
from tests.support.ports import free_port
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_http

MLFLOW_BUCKET = "mlflow"
SERVING_BUCKET = catalog.SERVING_BUCKET
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore"}
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


class MlflowServer(ServerProcess):
    """A running ``mlflow server`` process and where it listens."""


def start_mlflow_server(
    root: Path,
    port: int | None = None,
    backend_uri: str | None = None,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> MlflowServer:
    """Start ``mlflow server`` under ``root`` and wait until ``/health`` answers.

    Defaults: a free port, ``sqlite:///<root>/mlflow.db``, artifacts in ``<root>/artifacts`` (proxied by the
    server). ``env`` is added to this process's environment (``MLFLOW_TRACKING_URI`` is dropped); the log is
    appended to ``<root>/mlflow.log``. If the server exits or stays unhealthy, it is stopped and the error
    (``RuntimeError`` with the log's tail, or ``TimeoutError``) propagates.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    full_env = os.environ | SERVER_ENV | (env or {})
    full_env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri or f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", artifacts_destination or str(root / "artifacts"),
        "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = root / "mlflow.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    server = MlflowServer(proc, port, log)
    try:
        wait_http(f"{server.url}/health", timeout, proc, log)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class RegistryStack:
    """S3 plus an MLflow server; ``env`` is what a client (pipeline, API) needs to use them."""

    root: Path
    s3_url: str
    mlflow_port: int
    moto: Any = None
    mlflow: MlflowServer | None = None
    trained: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mlflow_url(self) -> str:
        """The MLflow server's URL."""
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment of an MLflow/S3 client."""
        return {
            **AWS_ENV,
            **QUIET,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
        }

    def start_mlflow(self, timeout: float = 120) -> None:
        """Start (or restart, same port and data) the MLflow server and wait until it is healthy."""
        self.mlflow = start_mlflow_server(
            self.root,
            port=self.mlflow_port,
            artifacts_destination=f"s3://{MLFLOW_BUCKET}/artifacts",
            env=self.env,
            timeout=timeout,
        )

    def stop_mlflow(self) -> None:
        """Stop the MLflow server (its data stays for :meth:`start_mlflow`)."""
        if self.mlflow is not None:
            self.mlflow.stop()
        self.mlflow = None

    @contextlib.contextmanager
    def paused_mlflow(self) -> Iterator[None]:
        """SIGSTOP the MLflow server and its workers, SIGCONT them on exit.

        The kernel still completes TCP handshakes into the listen backlog, so clients connect and then wait
        for an answer that never comes: the outage a timeout must bound (unlike a refused connection).
        """
        import psutil

        assert self.mlflow is not None, "MLflow is not running"
        root = psutil.Process(self.mlflow.proc.pid)
        procs = [root, *root.children(recursive=True)]
        for proc in procs:
            proc.suspend()
        try:
            yield
        finally:
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.resume()

    def close(self) -> None:
        """Stop everything this stack started."""
        self.stop_mlflow()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None


def start_registry_stack(root: Path, s3_url: str | None = None) -> RegistryStack:
    """Start moto (unless ``s3_url`` is given) and an MLflow server under ``root``; creates the buckets."""
    root.mkdir(parents=True, exist_ok=True)
    moto = None
    if s3_url is None:
        moto, s3_url = start_moto_s3()
    s3 = s3_client(s3_url)
    for bucket in (MLFLOW_BUCKET, SERVING_BUCKET):  # the artifacts; the champion cache (CHAMPION_CACHE_URI)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
    stack = RegistryStack(root=root, s3_url=s3_url, mlflow_port=free_port(), moto=moto)
    try:
        stack.start_mlflow()
    except Exception:
        stack.close()
        raise
    return stack
