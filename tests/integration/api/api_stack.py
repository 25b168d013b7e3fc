"""A small registry stack for the API's integration tests and benchmark: S3, an MLflow server, real champions.

* S3: moto's server (in this process) or any S3 endpoint given by the caller;
* MLflow: a real ``mlflow server`` process (SQLite backend, artifacts proxied to ``s3://mlflow/artifacts``,
  one worker, no job runner), stoppable and restartable on the same port and data;
* champions: the ML library's real pipeline (extract, validate, split, Optuna search, registry gate) run
  in a subprocess (``python -m tests.integration.api.api_stack train``) so its MLflow and Optuna state
  stays out of the caller;
* the API: ``uvicorn api.main:app`` as a process, configured only through its environment.

Everything listens on free ports of 127.0.0.1 under one temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import catalog

REPO = Path(__file__).resolve().parents[3]
MLFLOW_BUCKET = "mlflow"
SERVING_BUCKET = catalog.SERVING_BUCKET
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore"}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Wait until ``url`` answers 2xx; fail early with the log's tail if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"process for {url} exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class RegistryStack:
    """S3 plus an MLflow server; ``env`` is what a client (pipeline, API) needs to use them."""

    root: Path
    s3_url: str
    mlflow_port: int
    moto: Any = None
    mlflow_proc: subprocess.Popen[bytes] | None = None
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
        log = self.root / "mlflow.log"
        env = os.environ | self.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI")
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts",
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1",
        ]  # fmt: skip
        with log.open("ab") as out:
            self.mlflow_proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        wait_http(f"{self.mlflow_url}/health", timeout, self.mlflow_proc, log)

    def stop_mlflow(self) -> None:
        """Stop the MLflow server (its data stays for :meth:`start_mlflow`)."""
        _stop(self.mlflow_proc)
        self.mlflow_proc = None

    @contextlib.contextmanager
    def paused_mlflow(self) -> Iterator[None]:
        """SIGSTOP the MLflow server and its workers, SIGCONT them on exit.

        The kernel still completes TCP handshakes into the listen backlog, so clients connect and then wait
        for an answer that never comes: the outage a timeout must bound (unlike a refused connection).
        """
        import psutil

        assert self.mlflow_proc is not None, "MLflow is not running"
        root = psutil.Process(self.mlflow_proc.pid)
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
    """Start moto (unless ``s3_url`` is given) and an MLflow server under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    moto = None
    if s3_url is None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise

        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        s3_url = f"http://{host}:{port}"
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_url, **_boto_keys())
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


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def train_champion(
    stack: RegistryStack,
    model_name: str,
    spec_json: str | None = None,
    n_trials: int = 4,
    min_champion_score: float = 0.5,
    timeout: float = 600,
) -> dict[str, Any]:
    """Run the real pipeline for ``spec_json`` (default: breast cancer) and the gate; returns the decision."""
    out = stack.root / f"train-{model_name}-{len(stack.trained)}.json"
    env = (
        os.environ
        | stack.env
        | {
            "MLOPS_MODEL_NAME": model_name,
            "MLOPS_EXPERIMENT": f"{model_name}-experiment",
            "MLOPS_LAKE_BUCKET": f"lake-{abs(hash(model_name)) % 10**8}",
            "MLOPS_OPTUNA_STORAGE": f"sqlite:///{stack.root}/optuna.db",
            "MLOPS_N_TRIALS": str(n_trials),
            "MLOPS_CV_FOLDS": "3",
            "MLOPS_MIN_CHAMPION_SCORE": str(min_champion_score),
            "PYTHONPATH": str(REPO),
        }
    )
    cmd = [sys.executable, "-m", "tests.integration.api.api_stack", "train", "--output", str(out)]
    if spec_json is not None:
        spec_file = stack.root / f"spec-{model_name}-{len(stack.trained)}.json"
        spec_file.write_text(spec_json)
        cmd += ["--spec", str(spec_file)]
    log = stack.root / "train.log"
    with log.open("ab") as handle:
        done = subprocess.run(cmd, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"training failed ({done.returncode}):\n{log.read_text()[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    stack.trained.append(result)
    return result


def _train(spec_path: str | None, output: str) -> None:
    """Child process: extract, validate, split, search and gate with the settings in the environment."""
    from ml.etl import extract, split, validate
    from ml.lake import Lake
    from ml.registry import register_and_gate
    from ml.search import run_search
    from ml.settings import MLSettings
    from ml.spec import get_spec, parse_spec

    settings = MLSettings()
    spec = parse_spec(Path(spec_path).read_text(), spec_path) if spec_path else get_spec(settings.dataset)
    lake = Lake.from_env(settings.lake_bucket)
    lake.ensure_bucket()
    extract(spec, lake)
    report = validate(spec, lake, settings.max_invalid_fraction)
    split(spec, lake, settings.seed, settings.test_size, report)
    run = run_search(spec, settings, lake, workers=1, log_trials=False)
    assert run.result is not None
    decision = register_and_gate(run.result, spec, settings, lake)
    payload = (
        {"search_seconds": run.search_seconds}
        | run.result.model_dump(mode="json")
        | {"decision": decision.model_dump(mode="json")}
    )
    Path(output).write_text(json.dumps(payload, default=str))


@dataclass
class ApiProcess:
    """``uvicorn api.main:app`` as a process (one worker, uvloop/httptools when installed)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the process."""
        _stop(self.proc)


def start_api(env: dict[str, str], log: Path, port: int | None = None, timeout: float = 60) -> ApiProcess:
    """Start the API with exactly ``env`` (plus PATH) and wait for /health."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log",
    ]  # fmt: skip
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **QUIET, **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    api = ApiProcess(port, proc, log)
    try:
        wait_http(f"{api.url}/health", timeout, proc, log)
    except Exception:
        api.stop()
        raise
    return api


def main(argv: list[str] | None = None) -> int:
    """``train``: the child process of :func:`train_champion`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run the pipeline and the gate with the environment's settings")
    train.add_argument("--spec", help="dataset spec JSON file (default: MLOPS_DATASET's shipped spec)")
    train.add_argument("--output", required=True, help="where to write the result JSON")
    args = parser.parse_args(argv)
    _train(args.spec, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
