"""`up` fails fast and clearly: a crashing service (named, with its check and log), a busy port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra import catalog
from infra.local import Stack, StackError, StackSettings, allocate_ports, programs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_a_crashing_service_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """weed with an unknown flag exits at once: supervisor would retry for ever, `up` stops it and says so."""
    import dataclasses
    import shutil
    import tempfile

    real = programs.BUILDERS[catalog.S3]

    def broken(ctx: programs.BuildContext) -> programs.LocalService:
        svc = real(ctx)
        prog = dataclasses.replace(svc.program, command=[*svc.program.command, "-no-such-flag"])
        return dataclasses.replace(svc, program=prog)

    monkeypatch.setitem(programs.BUILDERS, catalog.S3, broken)
    root = Path(tempfile.mkdtemp(prefix="mlops-fail-", dir="/tmp"))
    root.chmod(0o711)
    settings = StackSettings(
        state_dir=root / "state",
        dags_folder=root,
        enable_mlflow=False,
        enable_airflow=False,
        enable_api=False,
        health_timeout_s=60,
        **allocate_ports(),
    )
    stack = Stack(settings)
    try:
        with pytest.raises(StackError) as e:
            stack.up()
        msg = str(e.value)
        print(msg)
        assert msg.startswith(f"service {catalog.S3} ")
        assert catalog.SERVICES[catalog.S3].health.describe() in msg
        assert "exited 3 times during start-up" in msg
        assert str(stack.paths.log(catalog.S3)) in msg
        assert "--- last lines of" in msg  # (weed prints its usage after the error)
        # Postgres, which does not depend on S3, came up anyway
        assert stack.status()["services"][catalog.POSTGRES]["healthy"]
    finally:
        stack.destroy()
        shutil.rmtree(root, ignore_errors=True)
    assert not stack.paths.root.exists()


def test_a_busy_port_is_refused_before_anything_starts() -> None:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="mlops-busy-", dir="/tmp"))
    settings = StackSettings(state_dir=root / "state", dags_folder=root, enable_api=False, **allocate_ports())
    stack = Stack(settings)
    try:
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", settings.seaweed_filer_port + 10000))
            blocker.listen()
            with pytest.raises(StackError, match="already in use") as e:
                stack.up()
        assert "seaweedfs filer grpc" in str(e.value)
        assert not stack.is_running()
    finally:
        stack.destroy()
        shutil.rmtree(root, ignore_errors=True)
