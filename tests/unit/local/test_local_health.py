"""Health-check logic that needs no running service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from infra import catalog
from infra.local import health
from infra.local.stack import tail

pytestmark = pytest.mark.unit


def doc(status: str = "healthy", beat: datetime | None = None) -> dict:
    beat = beat or datetime.now(UTC)
    return {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": status, "latest_scheduler_heartbeat": beat.isoformat()},
        "dag_processor": {"status": status, "latest_dag_processor_heartbeat": beat.isoformat()},
        "triggerer": {"status": None, "latest_triggerer_heartbeat": None},
    }


TOPO = catalog.Topology.local()


def test_component_healthy() -> None:
    r = health.check_airflow_component(TOPO, "scheduler", doc=doc())
    assert r.ok and "healthy" in r.detail


def test_component_unhealthy_or_absent() -> None:
    assert not health.check_airflow_component(TOPO, "scheduler", doc=doc("unhealthy")).ok
    assert not health.check_airflow_component(TOPO, "triggerer", doc=doc()).ok
    assert not health.check_airflow_component(TOPO, "nope", doc=doc()).ok


def test_heartbeat_of_a_previous_instance_does_not_count() -> None:
    beat = datetime.now(UTC) - timedelta(seconds=20)
    started_now = datetime.now(UTC).timestamp()
    r = health.check_airflow_component(TOPO, "scheduler", started_at=started_now, doc=doc(beat=beat))
    assert not r.ok and "stale" in r.detail
    assert health.check_airflow_component(TOPO, "scheduler", started_at=started_now - 60, doc=doc(beat=beat)).ok


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/health" else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_check(http_port: int) -> None:
    assert health.check_http(f"http://127.0.0.1:{http_port}/health").ok
    bad = health.check_http(f"http://127.0.0.1:{http_port}/other")
    assert not bad.ok and "503" in bad.detail


def test_http_check_connection_refused() -> None:
    from infra.local.ports import allocate_ports

    port = allocate_ports()["api_port"]
    r = health.check_http(f"http://127.0.0.1:{port}/health", timeout=1)
    assert not r.ok and "Connect" in r.detail


def test_sql_check_failure_names_the_database() -> None:
    from infra.local.ports import allocate_ports

    topo = catalog.Topology.local(catalog.Ports(postgres=allocate_ports()["postgres_port"]))
    r = health.check_sql(topo, catalog.Credentials.generate(), ("airflow",))
    assert not r.ok and r.detail.startswith("database airflow:")


def test_tail(tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(f, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "missing.log") == ""
