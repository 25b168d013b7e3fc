"""A service that cannot start makes `up` fail fast with a message naming the service, the check and the log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra import catalog
from infra.local import Stack, StackError, StackSettings, allocate_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_s3_port_taken_gives_a_clear_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    import shutil
    import tempfile

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
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", settings.s3_port))
    blocker.listen()
    stack = Stack(settings)
    try:
        with pytest.raises(StackError) as e:
            stack.up()
        msg = str(e.value)
        print(msg)
        assert msg.startswith(f"service {catalog.S3} ")
        assert catalog.SERVICES[catalog.S3].health.describe() in msg
        assert str(stack.paths.log(catalog.S3)) in msg
        assert "--- last lines of" in msg
        # Postgres, which does not depend on S3, came up anyway
        assert stack.status()["services"][catalog.POSTGRES]["healthy"]
    finally:
        blocker.close()
        stack.destroy()
        shutil.rmtree(root, ignore_errors=True)
    assert not stack.paths.root.exists()
