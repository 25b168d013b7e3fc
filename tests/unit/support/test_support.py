"""The shared test helpers of tests/support: ports, polling with a deadline, waiting for HTTP."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port, free_ports
from tests.support.waiting import wait_http, wait_until

pytestmark = pytest.mark.unit


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in [*ports, free_port()]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 2 and "done", 5, interval=0.01) == "done"


def test_wait_until_names_what_it_waited_for_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"waiting for the answer \(now 42\) \(last: 0\)"):
        wait_until(lambda: 0, 0.2, interval=0.05, what=lambda: "the answer (now 42)")
    assert time.monotonic() - started < 2


def test_wait_until_ignores_only_the_exceptions_it_is_told_to() -> None:
    def failing() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"last: ConnectionError: refused"):
        wait_until(failing, 0.1, interval=0.02, what="the server", ignore=(OSError,))
    with pytest.raises(ConnectionError):
        wait_until(failing, 5, interval=0.02)


def test_wait_http_fails_early_when_the_process_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("boom: the server could not start\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(30)
    with pytest.raises(RuntimeError, match="exited with 3:\nboom"):
        wait_http(f"http://127.0.0.1:{free_port()}/health", 30, proc, log)


def test_wait_http_times_out_on_a_silent_port() -> None:
    with pytest.raises(TimeoutError, match="did not answer within"):
        wait_http(f"http://127.0.0.1:{free_port()}/health", 0.3, interval=0.05)
