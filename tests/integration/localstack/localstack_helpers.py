"""Start a LocalStack (host mode) on a free port for a test, and talk to it (helpers, not fixtures)."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from infra.aws_lambda import localstack_venvs as lsvenv
from infra.local.settings import StackSettings, localstack_unavailable_reason
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[3]
ENVS_DIR = StackSettings().localstack_envs_dir
REGION = "us-east-1"


@dataclass
class LocalStack:
    """A running LocalStack: its port, log and start-up timings."""

    port: int
    log_path: Path
    start_seconds: float
    env_seconds: float

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, read_timeout=120),
        )

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@contextlib.contextmanager
def running_localstack(state: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[LocalStack]:
    """LocalStack on a free port with its state in ``state``; skipped without Python 3.13/3.12; always stopped."""
    reason = localstack_unavailable_reason()
    if reason:
        pytest.skip(f"LocalStack host mode needs Python 3.13 (LocalStack) and 3.12 (the function): {reason}")
    t0 = time.monotonic()
    venv = lsvenv.ensure_venv(ENVS_DIR)
    runtime_python = lsvenv.ensure_lambda_runtime(ENVS_DIR, "python3.12")
    env_seconds = time.monotonic() - t0
    port = free_port()
    argv, env = lsvenv.localstack_command_and_env(
        venv, state, port, lambda_pythons={"python3.12": runtime_python}, extra_env=extra_env
    )
    log_path = state / "localstack.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        t1 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"LocalStack exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(lsvenv.health_url(port), timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t1 > 90:
                pytest.fail(f"LocalStack not healthy after 90 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield LocalStack(port, log_path, time.monotonic() - t1, env_seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
