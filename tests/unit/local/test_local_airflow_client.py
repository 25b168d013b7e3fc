"""The Airflow REST client against a fake API (httpx.MockTransport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from infra.local.airflow_client import AirflowClient, AirflowError, DagRunProgress

pytestmark = pytest.mark.unit


class FakeAirflow:
    """Just enough of /auth/token and /api/v2 for the client."""

    def __init__(self) -> None:
        self.tokens = 0
        self.expired: set[str] = set()
        self.dag_visible_after = 2  # GET /dags/{id} answers 404 this many times
        self.paused = True
        self.patched: list[dict] = []
        self.run_states = ["queued", "running", "running", "success"]
        self.task_script = [
            {"a": None},
            {"a": "running"},
            {"a": "success", "b[0]": "running", "b[1]": "queued"},
            {"a": "success", "b[0]": "success", "b[1]": "success"},
        ]
        self.step = 0
        self.runs: list[dict] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/auth/token":
            body = json.loads(request.content)
            if body != {"username": "admin", "password": "pw"}:
                return httpx.Response(401)
            self.tokens += 1
            return httpx.Response(201, json={"access_token": f"t{self.tokens}"})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token or token in self.expired:
            return httpx.Response(401, json={"detail": "expired"})
        if path == "/api/v2/dags/d" and request.method == "GET":
            if self.dag_visible_after > 0:
                self.dag_visible_after -= 1
                return httpx.Response(404)
            return httpx.Response(200, json={"dag_id": "d", "is_paused": self.paused})
        if path == "/api/v2/dags/d" and request.method == "PATCH":
            self.patched.append(json.loads(request.content))
            self.paused = False
            return httpx.Response(200, json={"dag_id": "d", "is_paused": False})
        if path == "/api/v2/dags/d/dagRuns" and request.method == "POST":
            assert json.loads(request.content)["logical_date"] is None
            self.runs.insert(0, {"dag_run_id": "r1", "run_after": datetime.now(UTC).isoformat()})
            return httpx.Response(200, json={"dag_run_id": "r1"})
        if path == "/api/v2/dags/d/dagRuns" and request.method == "GET":
            return httpx.Response(200, json={"dag_runs": self.runs, "total_entries": len(self.runs)})
        if path == "/api/v2/dags/d/dagRuns/r1":
            state = self.run_states[min(self.step, len(self.run_states) - 1)]
            return httpx.Response(200, json={"state": state})
        if path == "/api/v2/dags/d/dagRuns/r1/taskInstances":
            tasks = self.task_script[min(self.step, len(self.task_script) - 1)]
            self.step += 1
            items = [
                {"task_id": k.split("[")[0], "map_index": int(k[k.index("[") + 1 : -1]) if "[" in k else -1, "state": v}
                for k, v in tasks.items()
            ]
            offset = int(request.url.params.get("offset", 0))
            return httpx.Response(200, json={"task_instances": items[offset:], "total_entries": len(items)})
        return httpx.Response(404)


@pytest.fixture
def fake() -> FakeAirflow:
    return FakeAirflow()


@pytest.fixture
def client(fake: FakeAirflow) -> AirflowClient:
    return AirflowClient("http://af", "admin", "pw", transport=httpx.MockTransport(fake.handler))


def test_token_is_cached_and_refreshed_on_401(fake: FakeAirflow, client: AirflowClient) -> None:
    assert client.token() == "t1"
    assert client.token() == "t1"
    fake.expired.add("t1")
    fake.dag_visible_after = 0
    assert client.get_dag("d") is not None
    assert client.token() == "t2"


def test_wrong_password() -> None:
    fake = FakeAirflow()
    c = AirflowClient("http://af", "admin", "wrong", transport=httpx.MockTransport(fake.handler))
    with pytest.raises(AirflowError, match="auth/token -> 401"):
        c.token()


def test_trigger_waits_for_the_dag_and_unpauses_it(fake: FakeAirflow, client: AirflowClient) -> None:
    run_id = client.trigger_dag("d", wait_for_dag_s=5)
    assert run_id == "r1"
    assert fake.patched == [{"is_paused": False}]


def test_trigger_of_a_missing_dag_times_out(client: AirflowClient) -> None:
    with pytest.raises(AirflowError, match="not found after"):
        client.wait_for_dag("nope", timeout=0.05, poll_s=0.01)


def test_wait_reports_progress_and_returns_the_final_state(client: AirflowClient) -> None:
    seen: list[DagRunProgress] = []
    state = client.wait_for_dag_run("d", "r1", poll_s=0, on_progress=seen.append)
    assert state == "success"
    assert [p.state for p in seen] == ["queued", "running", "running", "success"]
    assert seen[0].changed == {"a": None}
    assert seen[2].changed == {"a": "success", "b[0]": "running", "b[1]": "queued"}
    assert seen[-1].done and "3 success" in seen[-1].summary()


def test_wait_times_out(fake: FakeAirflow, client: AirflowClient) -> None:
    fake.run_states = ["running"]
    with pytest.raises(AirflowError, match="still running"):
        client.wait_for_dag_run("d", "r1", timeout=0.05, poll_s=0.01)


def test_wait_for_new_run(fake: FakeAirflow, client: AirflowClient) -> None:
    since = datetime.now(UTC)
    fake.runs = [{"dag_run_id": "old", "run_after": "2020-01-01T00:00:00+00:00"}]
    with pytest.raises(AirflowError, match="no new run"):
        client.wait_for_new_dag_run("d", after=since, timeout=0.05, poll_s=0.01)
    fake.runs.insert(0, {"dag_run_id": "new", "run_after": datetime.now(UTC).isoformat()})
    assert client.wait_for_new_dag_run("d", after=since, timeout=1, poll_s=0.01) == "new"
    assert client.wait_for_new_dag_run("d", after=since.replace(tzinfo=None), timeout=1, poll_s=0.01) == "new"


def test_stuck_dag_runs_are_running_runs_without_progress() -> None:
    """A run counts as stuck when no task runs and nothing changed for the threshold; a long task does not."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    runs = [
        {"dag_id": "quiet", "dag_run_id": "r1", "start_date": "2026-11-30T11:40:00Z", "queued_at": None},
        {"dag_id": "busy", "dag_run_id": "r2", "start_date": "2026-11-30T11:40:00Z", "queued_at": None},
        {"dag_id": "fresh", "dag_run_id": "r3", "start_date": "2026-11-30T11:40:00Z", "queued_at": None},
    ]
    tis = {
        "quiet": [
            {"task_id": "prepare", "map_index": -1, "state": "success", "end_date": "2026-11-30T11:41:00Z"},
            {"task_id": "tune", "map_index": 1, "state": "queued", "queued_when": "2026-11-30T11:42:00Z"},
        ],
        "busy": [{"task_id": "tune", "map_index": 0, "state": "running", "start_date": "2026-11-30T11:41:00Z"}],
        "fresh": [{"task_id": "tune", "map_index": 0, "state": "scheduled", "scheduled_when": "2026-11-30T11:59:00Z"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        if path == "/api/v2/dags/~/dagRuns":
            assert request.url.params["state"] == "running"
            return httpx.Response(200, json={"dag_runs": runs, "total_entries": len(runs)})
        dag = path.split("/")[4]
        return httpx.Response(200, json={"task_instances": tis[dag], "total_entries": len(tis[dag])})

    client = AirflowClient("http://af", "admin", "pw", transport=httpx.MockTransport(handler))
    stuck = client.stuck_dag_runs(stuck_after_s=300, now=now)
    assert stuck == [{"dag_id": "quiet", "run_id": "r1", "no_progress_s": 1080, "waiting": ["tune[1]"]}]
