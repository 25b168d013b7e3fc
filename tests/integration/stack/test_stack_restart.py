"""Restart on crash: supervisor restarts a killed service and its health comes back."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
import pytest

from infra import catalog
from infra.local import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def wait_restarted_and_healthy(stack: Stack, service: str, old_pid: int, timeout: float = 120) -> float:
    """Seconds until ``service`` runs as a new process that ``make status`` reports healthy.

    The wait asks the same question as ``Stack.status()`` (``Stack.service_status``), so a service it
    returns for is one that status calls healthy (e.g. a scheduler heartbeat from the new process).
    """
    t = time.monotonic()
    entry: dict = {}
    while time.monotonic() - t < timeout:
        entry = stack.service_status(service)
        if entry["pid"] not in (None, old_pid) and entry["healthy"]:
            return time.monotonic() - t
        time.sleep(0.5)
    pytest.fail(f"{service} not restarted and healthy within {timeout} s: {entry}")


def assert_all_healthy(stack: Stack) -> None:
    """``Stack.status()`` reports every service healthy; the failure names those that are not."""
    status = stack.status()
    unhealthy = {n: f"{e['state']}: {e['detail']}" for n, e in status["services"].items() if not e["healthy"]}
    assert status["healthy"], f"unhealthy: {unhealthy}"


def listener_pid(port: int) -> int:
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
            return c.pid
    raise AssertionError(f"nothing listens on {port}")


def test_killed_s3_server_is_restarted(up_stack: Stack) -> None:
    old = up_stack.supervisor().info(catalog.S3).pid
    os.kill(old, signal.SIGKILL)
    took = wait_restarted_and_healthy(up_stack, catalog.S3, old)
    print(f"s3 back in {took:.1f} s")


def test_killed_mlflow_is_restarted_without_a_stale_worker(up_stack: Stack) -> None:
    """``mlflow server`` serves from a child process; killing the parent must not leave that child holding
    the port (the launcher reaps it), or the restarted server could never bind."""
    old = up_stack.supervisor().info(catalog.MLFLOW).pid
    old_children = [p.pid for p in psutil.Process(old).children(recursive=True)]
    os.kill(old, signal.SIGKILL)
    took = wait_restarted_and_healthy(up_stack, catalog.MLFLOW, old)
    new = up_stack.supervisor().info(catalog.MLFLOW).pid
    server = listener_pid(up_stack.settings.mlflow_port)
    assert server == new or server in [p.pid for p in psutil.Process(new).children(recursive=True)]
    assert not any(psutil.pid_exists(p) and p != new for p in old_children)
    print(f"mlflow back in {took:.1f} s")


def test_killed_scheduler_is_restarted_and_reports_a_fresh_heartbeat(up_stack: Stack) -> None:
    old = up_stack.supervisor().info(catalog.AIRFLOW_SCHEDULER).pid
    os.kill(old, signal.SIGKILL)
    took = wait_restarted_and_healthy(up_stack, catalog.AIRFLOW_SCHEDULER, old, timeout=180)
    print(f"scheduler back in {took:.1f} s")
    assert_all_healthy(up_stack)


def test_up_recovers_after_supervisord_was_killed(up_stack: Stack) -> None:
    """kill -9 of supervisord leaves its children running and a stale pidfile and socket behind; `up` must
    clear them, stop the orphans and start a clean stack (the same as after a crash or a reboot)."""
    from infra.local.supervisor import stack_processes

    sup = up_stack.supervisord_pid()
    children = {p.pid for p in psutil.Process(sup).children(recursive=True)}
    os.kill(sup, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(sup).wait(timeout=10)
    assert up_stack.paths.supervisord_pid.exists() and up_stack.paths.supervisor_socket.exists()
    assert not up_stack.is_running()
    timings = up_stack.up()
    print(f"recovered in {timings['total']:.1f} s")
    assert_all_healthy(up_stack)
    assert not any(psutil.pid_exists(p) for p in children), "orphans of the killed supervisord survived"
    new_tree = {up_stack.supervisord_pid()} | {
        p.pid for p in psutil.Process(up_stack.supervisord_pid()).children(recursive=True)
    }
    strays = [p for p in stack_processes(up_stack.paths) if p.pid not in new_tree]
    assert not strays, [(p.pid, " ".join(p.cmdline()[:6])) for p in strays if p.is_running()]
