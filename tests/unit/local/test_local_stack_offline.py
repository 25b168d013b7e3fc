"""Stack operations that need no running service: a never-started stack, refusals, a busy port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra import catalog
from infra.local import Stack, StackError, StackSettings, allocate_ports

pytestmark = pytest.mark.unit


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        StackSettings(state_dir=tmp_path / "state", dags_folder=tmp_path, enable_api=False, **allocate_ports())
    )


def test_status_of_a_stack_never_started(stack: Stack) -> None:
    st = stack.status()
    assert st["supervisord"] == {"running": False, "pid": None}
    assert st["healthy"] is False
    assert set(st["services"]) == set(stack.services())
    for s in st["services"].values():
        assert s["state"] == "NOT STARTED" and not s["healthy"]


def test_down_and_destroy_of_a_stack_never_started(stack: Stack) -> None:
    stack.down()
    stack.destroy()
    assert not stack.paths.root.exists()


def test_destroy_refuses_a_directory_that_is_not_a_stack(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    stack = Stack(StackSettings(state_dir=precious, dags_folder=tmp_path, **allocate_ports()))
    with pytest.raises(StackError, match="refusing"):
        stack.destroy()
    assert (precious / "thesis.tex").exists()


def test_credentials_before_up(stack: Stack) -> None:
    with pytest.raises(StackError, match="run `up` first"):
        stack.credentials()


def test_busy_port_fails_before_starting_anything(stack: Stack) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", stack.settings.mlflow_port))
        blocker.listen()
        with pytest.raises(StackError, match=rf"{catalog.MLFLOW}: {stack.settings.mlflow_port}"):
            stack._check_ports_free(stack.services())
    stack._check_ports_free(stack.services())


def test_down_of_a_missing_state_dir_creates_nothing(stack: Stack) -> None:
    stack.down()
    assert not stack.paths.root.exists()


def test_the_lock_excludes_a_second_holder(stack: Stack) -> None:
    other = Stack(stack.settings)
    with stack.locked():
        with stack.locked():  # re-entrant
            pass
        with pytest.raises(StackError, match="holds"), other.locked(timeout=0.2):
            pass
    with other.locked(timeout=0.2):
        pass


def test_up_says_why_localstack_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.local import settings as settings_module

    reason = "no Python 3.13 interpreter found (tried: /usr/bin/python3.13 (system) does not exist)"
    monkeypatch.setattr(settings_module, "localstack_unavailable_reason", lambda: reason)
    said: list[str] = []
    stack = Stack(
        StackSettings(state_dir=tmp_path / "state", dags_folder=tmp_path, **allocate_ports()), out=said.append
    )
    assert catalog.LOCALSTACK not in stack.services()
    stack._announce_localstack()
    assert said == [
        f"LocalStack (the API as a Lambda) is off: {reason}. The stack runs without it "
        "(MLOPS_STACK_ENABLE_LOCALSTACK=0 silences this, =1 requires it)."
    ]
    assert stack.lambda_endpoints() == {}
    said.clear()
    Stack(StackSettings(state_dir=tmp_path / "s2", enable_localstack=False), out=said.append)._announce_localstack()
    assert said == []


def test_up_fails_on_a_busy_port_before_creating_anything(stack: Stack) -> None:
    """The collision check runs first: no state directory, credentials or database cluster is made."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", stack.settings.postgres_port))
        blocker.listen()
        with pytest.raises(StackError, match="MLOPS_STACK_PORT_OFFSET"):
            stack.up()
    assert not stack.paths.credentials.exists()
    assert not (stack.paths.postgres_data / "PG_VERSION").exists()
