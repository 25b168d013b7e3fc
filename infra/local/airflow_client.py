"""A small authenticated client of Airflow 3's REST API (``/api/v2``) for drivers and tests.

Authentication is SimpleAuthManager's: ``POST /auth/token`` with the admin password gives a JWT that is
sent as a Bearer token (refreshed once on 401).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def _ts(value: str | None) -> datetime | None:
    """A timestamp of the API (ISO 8601, ``Z`` or offset) as an aware datetime."""
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class AirflowError(RuntimeError):
    """An Airflow API call failed or a wait ran out of time."""


@dataclass
class DagRunProgress:
    """Snapshot of a DAG run, passed to ``on_progress`` whenever something changed."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str | None]  # task id (``task[i]`` for mapped instances) -> state
    elapsed_s: float
    changed: dict[str, str | None] = field(default_factory=dict)  # tasks whose state changed since last call

    @property
    def done(self) -> bool:
        """Whether the run has ended."""
        return self.state in TERMINAL_RUN_STATES

    def summary(self) -> str:
        """One line: run state and task counts by state."""
        counts: dict[str, int] = {}
        for s in self.tasks.values():
            counts[s or "none"] = counts.get(s or "none", 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"{self.dag_id} {self.run_id}: {self.state} after {self.elapsed_s:.0f} s ({parts})"


class AirflowClient:
    """Authenticated calls to one Airflow API server."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth ------------------------------------------------------------------------------------------------
    def token(self, refresh: bool = False) -> str:
        """A JWT access token for the admin user (cached; ``refresh`` forces a new one)."""
        if self._token is None or refresh:
            r = self._http.post("/auth/token", json={"username": self._username, "password": self._password})
            if r.status_code not in (200, 201):
                raise AirflowError(f"POST /auth/token -> {r.status_code} {r.text[:200]}")
            self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An ``/api/v2`` call with the Bearer token (one retry with a fresh token on 401)."""
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.token(refresh=attempt == 1)}"}
            r = self._http.request(method, path, headers=headers, **kwargs)
            if r.status_code != 401:
                return r
        return r

    def _json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        r = self.request(method, path, **kwargs)
        if r.status_code not in ok:
            raise AirflowError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        return r.json()

    # -- DAGs and runs ---------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no auth needed)."""
        r = self._http.get("/api/v2/monitor/health")
        r.raise_for_status()
        return r.json()

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details, or None while the DAG processor has not parsed it."""
        r = self.request("GET", f"/api/v2/dags/{dag_id}")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise AirflowError(f"GET /api/v2/dags/{dag_id} -> {r.status_code} {r.text[:300]}")
        return r.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Wait until the DAG is parsed (and unpause it if needed); bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while (dag := self.get_dag(dag_id)) is None:
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"DAG {dag_id} not found after {timeout:.0f} s: is it in the DAG folder and free of import "
                    "errors? (see the dag-processor log and GET /api/v2/importErrors)"
                )
            time.sleep(poll_s)
        if dag.get("is_paused"):
            self._json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        return dag

    def import_errors(self) -> list[dict[str, Any]]:
        """DAG files that failed to import (``/api/v2/importErrors``)."""
        return self._json("GET", "/api/v2/importErrors").get("import_errors", [])

    def trigger_dag(self, dag_id: str, conf: dict[str, Any] | None = None, wait_for_dag_s: float = 120.0) -> str:
        """Trigger a run of ``dag_id`` now (waiting first until the DAG is parsed); returns its run id."""
        self.wait_for_dag(dag_id, timeout=wait_for_dag_s)
        body = {"logical_date": None, "conf": conf or {}}
        run = self._json("POST", f"/api/v2/dags/{dag_id}/dagRuns", ok=(200, 201), json=body)
        return run["dag_run_id"]

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run (``state``, dates, ``conf``...)."""
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def list_dag_runs(self, dag_id: str, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
        """Runs of a DAG, newest first."""
        q = {"limit": limit, "order_by": "-id", **params}
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=q)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, as the API returns them (all pages)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self._json(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            items = page.get("task_instances", [])
            found += items
            if not items or len(found) >= page.get("total_entries", 0):
                return found

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """State of every task instance of a run (``task[i]`` for mapped instances)."""
        states: dict[str, str | None] = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti.get("map_index", -1) in (-1, None) else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti.get("state")
        return states

    def running_dag_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Runs of every DAG that are in state ``running``."""
        q = {"limit": limit, "state": "running", "order_by": "-id"}
        return self._json("GET", "/api/v2/dags/~/dagRuns", params=q)["dag_runs"]

    def stuck_dag_runs(self, stuck_after_s: float, now: datetime | None = None) -> list[dict[str, Any]]:
        """Running DAG runs that made no progress for ``stuck_after_s``.

        No progress: no task instance is running (or deferred) and none changed state (queued, started,
        ended) since then. A long task does not count as stuck: it runs, and a task whose process died is
        failed by the scheduler within its heartbeat timeout, which is a change.
        """
        now = now or datetime.now(UTC)
        stuck = []
        for run in self.running_dag_runs():
            tis = self.task_instances(run["dag_id"], run["dag_run_id"])
            if any(ti.get("state") in ("running", "deferred") for ti in tis):
                continue
            stamps = [_ts(run.get("start_date")), _ts(run.get("queued_at"))]
            for ti in tis:
                stamps += [_ts(ti.get(k)) for k in ("queued_when", "scheduled_when", "start_date", "end_date")]
            last = max((t for t in stamps if t is not None), default=None)
            if last is not None and (now - last).total_seconds() > stuck_after_s:
                waiting = sorted(
                    ti["task_id"] if ti.get("map_index", -1) in (-1, None) else f"{ti['task_id']}[{ti['map_index']}]"
                    for ti in tis
                    if ti.get("state") not in TERMINAL_TI_STATES
                )
                stuck.append(
                    {
                        "dag_id": run["dag_id"],
                        "run_id": run["dag_run_id"],
                        "no_progress_s": round((now - last).total_seconds()),
                        "waiting": waiting,
                    }
                )
        return stuck

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 900.0,
        poll_s: float = 1.0,
        on_progress: Callable[[DagRunProgress], None] | None = None,
    ) -> str:
        """Poll a run until it ends; call ``on_progress`` whenever the run or a task changes state.

        Returns the final state (``success`` or ``failed``); raises :class:`AirflowError` after ``timeout``.
        """
        start = time.monotonic()
        last: tuple[str, dict[str, str | None]] | None = None
        while True:
            state = self.get_dag_run(dag_id, run_id)["state"]
            tasks = self.task_states(dag_id, run_id)
            if last is None or (state, tasks) != last:
                prev = last[1] if last else {}
                changed = {k: v for k, v in tasks.items() if prev.get(k, "<new>") != v}
                if on_progress is not None:
                    on_progress(DagRunProgress(dag_id, run_id, state, tasks, time.monotonic() - start, changed))
                last = (state, tasks)
            if state in TERMINAL_RUN_STATES:
                return state
            if time.monotonic() - start > timeout:
                raise AirflowError(f"DAG run {dag_id}/{run_id} still {state} after {timeout:.0f} s: {tasks}")
            time.sleep(poll_s)

    def wait_for_new_dag_run(
        self, dag_id: str, after: datetime | None = None, timeout: float = 300.0, poll_s: float = 1.0
    ) -> str:
        """Wait for a new run of ``dag_id`` and return its run id.

        New means created (``run_after``) after ``after``, or absent from the list at the call when ``after`` is
        None: e.g. a run the scheduler starts because an asset was updated.
        """
        deadline = time.monotonic() + timeout
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        known = None if after is not None else {r["dag_run_id"] for r in self.list_dag_runs(dag_id)}
        while True:
            for run in self.list_dag_runs(dag_id, limit=20):
                if known is not None:
                    if run["dag_run_id"] not in known:
                        return run["dag_run_id"]
                else:
                    ts = run.get("run_after") or run.get("queued_at") or run.get("start_date")
                    if ts and after is not None and datetime.fromisoformat(ts.replace("Z", "+00:00")) > after:
                        return run["dag_run_id"]
            if time.monotonic() > deadline:
                raise AirflowError(f"no new run of {dag_id} within {timeout:.0f} s")
            time.sleep(poll_s)


def dag_run_health(client: Callable[[], AirflowClient], stuck_after_s: float) -> dict[str, Any]:
    """Running DAG runs and those without progress for ``stuck_after_s`` (``stuck``), for ``status``.

    Never raises: Airflow's own health is reported elsewhere; an error here is reported as ``error``.
    """
    try:
        with client() as af:
            running = af.running_dag_runs()
            stuck = af.stuck_dag_runs(stuck_after_s) if running else []
    except Exception as e:
        return {"running": None, "stuck": [], "error": f"{type(e).__name__}: {e}"[:200]}
    return {"running": len(running), "stuck": stuck, "stuck_after_s": stuck_after_s}
