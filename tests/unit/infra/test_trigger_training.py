"""infra/docker/trigger_training.py against a fake Airflow 3 REST API (standard library HTTP server)."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest

from tests.unit.infra.pulumi_harness import REPO

pytestmark = pytest.mark.unit

PASSWORD = "s3cret-admin"


def load_script() -> ModuleType:
    """Import the script (infra/docker is not a package)."""
    spec = importlib.util.spec_from_file_location("trigger_training", REPO / "infra" / "docker" / "trigger_training.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeAirflow:
    """Just enough of Airflow 3: health, token, DAGs, runs; a training run appears after its ETL run succeeded.

    ``etl_states``: the final state of each ETL DAG (its training DAG is ``training_<rest>``).
    """

    def __init__(self, etl_states: dict[str, str], training_state: str = "success") -> None:
        self.etl_states = etl_states
        self.training_state = training_state
        self.calls: list[tuple[str, str, Any]] = []
        self.paused = {dag: True for dag in etl_states} | {training(dag): False for dag in etl_states}
        self.polls: dict[str, int] = {}

    def etl_done(self, training_dag: str) -> bool:
        etl = "etl_" + training_dag.removeprefix("training_")
        return self.polls.get(etl, 0) >= 2 and self.etl_states[etl] == "success"

    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        self.calls.append((method, path, body))
        if path == "/api/v2/monitor/health":
            return 200, {"metadatabase": {"status": "healthy"}}
        if path == "/auth/token":
            ok = body == {"username": "admin", "password": PASSWORD}
            return (201, {"access_token": "tok"}) if ok else (401, {"detail": "bad credentials"})
        if headers.get("Authorization") != "Bearer tok":
            return 401, {"detail": "not authenticated"}
        parts = path.split("?")[0].split("/")  # ['', 'api', 'v2', 'dags', id, ...]
        dag_id = parts[4]
        if len(parts) == 5 and method == "GET":
            return 200, {"dag_id": dag_id, "is_paused": self.paused[dag_id]}
        if len(parts) == 5 and method == "PATCH":
            self.paused[dag_id] = bool(body["is_paused"])
            return 200, {"dag_id": dag_id, "is_paused": self.paused[dag_id]}
        if parts[5:] == ["dagRuns"] and method == "POST":
            return 200, {"dag_run_id": "manual__1", "state": "queued"}
        if parts[5:] == ["dagRuns", "manual__1"]:
            self.polls[dag_id] = self.polls.get(dag_id, 0) + 1
            return 200, {"state": "running" if self.polls[dag_id] < 2 else self.etl_states[dag_id]}
        if parts[5:] == ["dagRuns"] and dag_id.startswith("training_"):
            runs = []
            if self.etl_done(dag_id):
                runs = [{"dag_run_id": "asset_triggered__1", "run_after": datetime.now(UTC).isoformat()}]
            return 200, {"dag_runs": runs}
        if parts[5:] == ["dagRuns", "asset_triggered__1"]:
            return 200, {"state": self.training_state}
        return 404, {"detail": f"unexpected {method} {path}"}


def training(etl_dag: str) -> str:
    return "training_" + etl_dag.removeprefix("etl_")


@pytest.fixture
def fake_airflow(request: pytest.FixtureRequest) -> Iterator[tuple[FakeAirflow, str]]:
    fake = FakeAirflow(*getattr(request, "param", ({"etl_a": "success", "etl_b": "success"},)))

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_script()
    monkeypatch.setattr(module.time, "sleep", lambda _s: None)
    monkeypatch.setenv("MLOPS_AIRFLOW_PASSWORD", PASSWORD)
    return module


def test_triggers_every_etl_and_follows_each_training(
    script: ModuleType, fake_airflow: tuple[FakeAirflow, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = fake_airflow
    assert script.main(["etl_a:training_a", "etl_b:training_b", "--url", url]) == 0
    for etl in ("etl_a", "etl_b"):
        assert ("POST", f"/api/v2/dags/{etl}/dagRuns", {"logical_date": None}) in fake.calls
        assert fake.paused[etl] is False  # unpaused before the trigger
        assert not [c for c in fake.calls if c[0] == "POST" and training(etl) in c[1]]  # followed, not triggered
        assert ("GET", f"/api/v2/dags/{training(etl)}/dagRuns/asset_triggered__1", None) in fake.calls
    assert "training pipeline finished" in capsys.readouterr().out


@pytest.mark.parametrize("fake_airflow", [({"etl_a": "failed", "etl_b": "success"},)], indirect=True)
def test_a_failed_pipeline_fails_the_script_but_the_others_are_followed(
    script: ModuleType, fake_airflow: tuple[FakeAirflow, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = fake_airflow
    assert script.main(["etl_a:training_a", "etl_b:training_b", "--url", url]) == 1
    assert ("GET", "/api/v2/dags/training_b/dagRuns/asset_triggered__1", None) in fake.calls
    out = capsys.readouterr().out
    assert "etl_a: failed" in out and "training_a: not started" in out and "training_b: success" in out
    assert "not successful: etl_a, training_a" in out


@pytest.mark.parametrize("fake_airflow", [({"etl_a": "success"}, "failed")], indirect=True)
def test_a_failed_training_fails_the_script(script: ModuleType, fake_airflow: tuple[FakeAirflow, str]) -> None:
    _, url = fake_airflow
    assert script.main(["etl_a:training_a", "--url", url]) == 1


def test_wrong_password_fails_clearly(
    script: ModuleType, fake_airflow: tuple[FakeAirflow, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = fake_airflow
    monkeypatch.setenv("MLOPS_AIRFLOW_PASSWORD", "wrong")
    assert script.main(["etl_a", "--url", url]) == 1  # at once: a refused login is not retried
    assert [c[1] for c in fake.calls].count("/auth/token") == 1


def test_missing_password_is_a_usage_error(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_AIRFLOW_PASSWORD")
    assert script.main(["etl_a"]) == 2


@pytest.mark.parametrize("bad", ["", ":training_a", "etl_a:", "etl_a:,"])
def test_a_malformed_pipeline_is_a_usage_error(script: ModuleType, bad: str) -> None:
    with pytest.raises(SystemExit) as exited:
        script.main([bad])
    assert exited.value.code == 2
