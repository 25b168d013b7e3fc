"""Trigger the training pipelines on a running Airflow 3 and wait for them (standard library only).

Each argument is one pipeline, ``TRIGGER[:FOLLOW[,FOLLOW...]]``: the DAG to trigger (``POST
/api/v2/dags/{id}/dagRuns {"logical_date": null}``) and the DAGs that start by themselves after it (a
dataset's training DAG is scheduled on the Asset its ETL updates). All pipelines are triggered at once and
followed to their end; one failed pipeline does not stop the others. Exits 1 if any run failed or a wait
ran out of time, after reporting every pipeline.

Baked into the Airflow image (the optional ``trigger-training`` job of the Pulumi program runs it, with
one ``etl_<dataset>:training_<dataset>`` per active dataset) and usable from the host::

    MLOPS_AIRFLOW_URL=http://localhost:8080 \
    MLOPS_AIRFLOW_PASSWORD="$(pulumi stack output airflowAdminPassword --show-secrets)" \
    python infra/docker/trigger_training.py etl_breast_cancer:training_breast_cancer etl_wine:training_wine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

TERMINAL = {"success", "failed"}


class TriggerError(RuntimeError):
    """Airflow answered unexpectedly or a wait ran out of time."""


class AuthError(TriggerError):
    """Airflow refused the credentials: waiting longer will not help."""


class Airflow:
    """The few Airflow REST calls this script needs, authenticated with SimpleAuthManager's JWT."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        """One JSON request; raises :class:`TriggerError` on an HTTP error."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.login()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise TriggerError(f"{method} {path} -> {exc.code} {exc.read()[:300]!r}") from None

    def login(self) -> str:
        """``POST /auth/token {username, password}`` -> access token (cached)."""
        if self.token is None:
            try:
                answer = self.call(
                    "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
                )
            except TriggerError as exc:
                if " -> 401 " in str(exc) or " -> 403 " in str(exc):
                    raise AuthError(f"Airflow refused user {self.username!r}: {exc}") from None
                raise
            self.token = str(answer["access_token"])
        return self.token


def wait_until(what: str, check: Any, timeout_s: float, poll_s: float = 3.0) -> Any:
    """Call ``check()`` until it returns something truthy; connection and HTTP errors count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AuthError:
            raise
        except (OSError, TriggerError) as exc:
            last_error = f" (last error: {exc})"
        time.sleep(poll_s)
    raise TriggerError(f"timed out after {timeout_s:.0f} s waiting for {what}{last_error}")


def wait_for_run(af: Airflow, dag_id: str, run_id: str, timeout_s: float) -> str:
    """Wait for a DAG run to end; return its final state."""
    last = ""

    def ended() -> str | None:
        nonlocal last
        state = str(af.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])
        if state != last:
            print(f"{dag_id} {run_id}: {state}", flush=True)
            last = state
        return state if state in TERMINAL else None

    return str(wait_until(f"{dag_id} run {run_id} to end", ended, timeout_s))


def new_run_after(af: Airflow, dag_id: str, after: datetime) -> str | None:
    """Id of a run of ``dag_id`` queued after ``after`` (e.g. started by an Asset update), if any."""
    runs = af.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]
    for run in runs:
        stamp = run.get("run_after") or run.get("queued_at")
        if stamp and datetime.fromisoformat(stamp.replace("Z", "+00:00")) > after:
            return str(run["dag_run_id"])
    return None


def parse_pipeline(text: str) -> tuple[str, list[str]]:
    """``TRIGGER[:FOLLOW[,FOLLOW...]]`` -> (trigger, follow); raises ``ValueError`` on an empty name."""
    trigger, colon, rest = text.partition(":")
    follow = [d for d in rest.split(",") if d]
    if not trigger or (colon and not follow):
        raise ValueError(f"pipeline {text!r}: expected TRIGGER[:FOLLOW[,FOLLOW...]], e.g. etl_wine:training_wine")
    return trigger, follow


def run_pipelines(af: Airflow, pipelines: list[tuple[str, list[str]]], timeout_s: float) -> dict[str, str]:
    """Trigger every pipeline's DAG, then follow each to its end; returns the final state by DAG."""
    for dag_id in (d for trigger, follow in pipelines for d in (trigger, *follow)):
        # The DAG processor parses new files within seconds; unpause in case the DAG was paused.
        dag = wait_until(f"DAG {dag_id} to be parsed", lambda d=dag_id: af.call("GET", f"/api/v2/dags/{d}"), 600)
        if dag.get("is_paused"):
            af.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    started = datetime.now(UTC)
    runs = {}
    for trigger, _ in pipelines:
        runs[trigger] = af.call("POST", f"/api/v2/dags/{trigger}/dagRuns", {"logical_date": None})["dag_run_id"]
        print(f"triggered {trigger} run {runs[trigger]}", flush=True)
    states: dict[str, str] = {}
    for trigger, follow in pipelines:
        try:
            state = states[trigger] = wait_for_run(af, trigger, runs[trigger], timeout_s)
            for dag_id in follow:
                if state != "success":
                    states[dag_id] = "not started"
                    continue
                run_id = wait_until(f"a new run of {dag_id}", lambda d=dag_id: new_run_after(af, d, started), 600)
                state = states[dag_id] = wait_for_run(af, dag_id, run_id, timeout_s)
        except AuthError:
            raise
        except TriggerError as exc:  # this pipeline timed out or Airflow erred: report it, follow the others
            print(f"error: {exc}", file=sys.stderr, flush=True)
            for dag_id in (trigger, *follow):
                states.setdefault(dag_id, "timed out")
    return states


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pipelines", nargs="+", help="TRIGGER[:FOLLOW[,FOLLOW...]], e.g. etl_wine:training_wine (one per dataset)"
    )
    parser.add_argument("--url", default=os.environ.get("MLOPS_AIRFLOW_URL", "http://localhost:8080"))
    parser.add_argument("--username", default=os.environ.get("MLOPS_AIRFLOW_USERNAME", "admin"))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each run")
    args = parser.parse_args(argv)
    try:
        pipelines = [parse_pipeline(p) for p in args.pipelines]
    except ValueError as exc:
        parser.error(str(exc))
    password = os.environ.get("MLOPS_AIRFLOW_PASSWORD")
    if not password:
        print("set MLOPS_AIRFLOW_PASSWORD (pulumi stack output airflowAdminPassword --show-secrets)", file=sys.stderr)
        return 2

    af = Airflow(args.url, args.username, password)
    try:
        wait_until(
            f"Airflow at {af.url}",
            lambda: af.call("GET", "/api/v2/monitor/health", auth=False)["metadatabase"]["status"] == "healthy",
            timeout_s=600,
        )
        states = run_pipelines(af, pipelines, args.timeout)
    except TriggerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for dag_id, state in states.items():
        print(f"  {dag_id}: {state}", flush=True)
    failed = sorted(d for d, state in states.items() if state != "success")
    if failed:
        print(f"training pipelines finished; not successful: {', '.join(failed)}", flush=True)
        return 1
    print("training pipeline finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
