"""Every service healthy, reachable on 127.0.0.1 only; status, up twice, memory."""

from __future__ import annotations

import json

import psutil
import pytest

from infra import catalog
from infra.local import Stack
from tests.integration.stack.stack_helpers import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_every_service_is_healthy(up_stack: Stack) -> None:
    st = up_stack.status()
    assert st["supervisord"]["running"]
    assert set(st["services"]) == set(up_stack.services())
    assert {catalog.POSTGRES, catalog.S3, catalog.MLFLOW, catalog.AIRFLOW_SCHEDULER} <= set(st["services"])
    for name, s in st["services"].items():
        assert s["healthy"], f"{name}: {s['detail']}"
        assert s["state"] == "RUNNING"
        assert s["check"] == catalog.SERVICES[name].health.describe()
    assert st["healthy"]


def test_first_up_timings(stack: Stack) -> None:
    timings = stack.first_up_timings  # type: ignore[attr-defined]
    print(f"first up: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    assert set(timings) == {*stack.services(), "total"}
    order = catalog.start_order(stack.services())
    for name in order:  # nobody was healthy before what it depends on
        for dep in catalog.SERVICES[name].depends_on:
            if dep in timings:
                assert timings[dep] <= timings[name], (dep, name)


def test_every_listener_is_on_loopback(up_stack: Stack) -> None:
    root = psutil.Process(up_stack.supervisord_pid())
    ports = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                assert c.laddr.ip == "127.0.0.1", f"{proc.name()} ({proc.pid}) listens on {c.laddr}"
                ports.add(c.laddr.port)
    expected = {up_stack.topology.port(n) for n in up_stack.services() if catalog.SERVICES[n].port}
    assert expected <= ports
    assert ports <= set(up_stack.settings.listening_ports().values()), "a listener on a port we did not choose"


def test_status_json_from_the_cli(up_stack: Stack) -> None:
    code, out, err = cli(up_stack.settings, "status", "--json")
    assert code == 0, err
    st = json.loads(out)
    assert st["healthy"] is True
    assert st["state_dir"] == str(up_stack.paths.root)
    assert all(s["healthy"] for s in st["services"].values())
    code, out, _ = cli(up_stack.settings, "status")
    assert code == 0 and "UNHEALTHY" not in out and "airflow-scheduler" in out


def test_up_twice_is_harmless(up_stack: Stack) -> None:
    before = {n: i.pid for n, i in up_stack.supervisor().all_info().items()}
    timings = up_stack.up()
    after = {n: i.pid for n, i in up_stack.supervisor().all_info().items()}
    assert before == after  # nothing restarted
    assert timings["total"] < 15


def test_logs_from_the_cli(up_stack: Stack) -> None:
    code, out, _ = cli(up_stack.settings, "logs", "postgres", "-n", "5")
    assert code == 0 and out.strip()
    code, _, err = cli(up_stack.settings, "logs", "no-such-service")
    assert code == 1 and "known:" in err


def test_idle_memory(up_stack: Stack) -> None:
    mem = up_stack.memory()
    print(f"stack PSS {mem['total_mb']:.0f} MB in {mem['processes']} processes: {mem['by_program']}")
    assert mem["total_mb"] < 2500
