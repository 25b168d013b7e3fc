"""Fault injection helpers: run a DAG, hit a process at the right moment, measure how the stack recovers.

Faults are signals to single processes of the stack (SIGKILL, SIGSTOP/SIGCONT), found through supervisor.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

from dags.pipeline_ids import pipeline
from infra import catalog
from infra.local import Stack
from ml.contracts import SearchRunTags
from ml.settings import MLSettings
from ml.tracking import child_runs
from tests.integration.mlflow_operator import logged_in

ETL_DAG, TRAINING_DAG = pipeline(MLSettings().dataset)  # the default dataset's pair


@dataclass
class FaultRun:
    """One DAG run with a fault injected into it."""

    dag_id: str
    run_id: str
    state: str
    fault_at: float | None  # monotonic time of the fault
    ended_at: float
    tasks: dict[str, str | None] = field(default_factory=dict)

    @property
    def recovered_s(self) -> float | None:
        """Seconds from the fault to the end of the run."""
        return None if self.fault_at is None else self.ended_at - self.fault_at


def pid_of(stack: Stack, service: str) -> int:
    """The running process of a service (what supervisor watches)."""
    info = stack.supervisor().info(service)
    assert info.state == "RUNNING" and info.pid, f"{service} is {info.state}"
    return int(info.pid)


def kill(stack: Stack, service: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to a service's process; returns its pid."""
    pid = pid_of(stack, service)
    os.kill(pid, sig)
    return pid


def worker_of(stack: Stack, service: str) -> int:
    """The one child process of a service's process (e.g. the API's uvicorn worker under its gunicorn master)."""
    import psutil

    children = psutil.Process(pid_of(stack, service)).children()
    assert len(children) == 1, f"{service}: expected one worker process, found {[c.pid for c in children]}"
    return children[0].pid


def run_dag(
    stack: Stack,
    dag_id: str,
    fault: Callable[[], Any] | None = None,
    when: Callable[[dict[str, str | None]], bool] = lambda tasks: False,
    timeout_s: float = 900,
) -> FaultRun:
    """Trigger ``dag_id``, call ``fault`` once ``when(task states)`` holds, wait for the run to end."""
    fault_at = None
    with stack.airflow(timeout=30) as af:
        run_id = stack.trigger_dag(dag_id)
        deadline = time.monotonic() + timeout_s
        tasks: dict[str, str | None] = {}
        while True:
            try:
                state = af.get_dag_run(dag_id, run_id)["state"]
                tasks = af.task_states(dag_id, run_id)
            except Exception as e:  # Airflow's API server may be restarting after the fault: retry
                print(f"  (Airflow API: {type(e).__name__}: {str(e)[:120]})")
                time.sleep(2)
                continue
            if fault is not None and fault_at is None and when(tasks):
                fault()
                fault_at = time.monotonic()
                print(f"  fault injected; tasks: {tasks}", flush=True)
            if state in ("success", "failed"):
                return FaultRun(dag_id, run_id, state, fault_at, time.monotonic(), tasks)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id} {run_id} still {state} {timeout_s:.0f} s after it was triggered "
                    f"(fault {'injected' if fault_at else 'not injected'}): {tasks}\n{stack.status()}"
                )
            time.sleep(0.5)


def tune_running(tasks: dict[str, str | None]) -> bool:
    """At least one mapped ``tune`` task is running."""
    return any(t.startswith("tune") and state == "running" for t, state in tasks.items())


@dataclass(frozen=True)
class SearchOutcome:
    """What the last search left in Optuna and MLflow."""

    budget: int
    finished_trials: int  # COMPLETE or PRUNED
    other_trials: dict[str, int]  # e.g. {"FAIL": 1} for an interrupted and retried trial
    child_runs: int
    parent: dict[str, Any]


def last_search(stack: Stack) -> SearchOutcome:
    """The newest search (parent run) of the experiment, its study's trials and its child runs."""
    settings = MLSettings()
    with logged_in(stack):
        client = MlflowClient(tracking_uri=stack.url(catalog.MLFLOW))
        experiment = client.get_experiment_by_name(settings.dataset)  # a spec's experiment is its name
        search = f"tags.`{SearchRunTags.tag_key('kind')}` = 'search'"
        (parent,) = client.search_runs([experiment.experiment_id], search, order_by=["start_time DESC"], max_results=1)
        children = len(child_runs(client, parent.info.run_id))
    study_name = SearchRunTags.from_tags(parent.data.tags).study
    study = optuna.load_study(study_name=study_name, storage=stack.postgres_url("optuna"))
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    finished = states.pop("COMPLETE", 0) + states.pop("PRUNED", 0)
    return SearchOutcome(
        budget=int(parent.data.params["n_trials"]),
        finished_trials=finished,
        other_trials=states,
        child_runs=children,
        parent={**parent.data.params, **parent.data.metrics, **parent.data.tags},
    )


def lake_keys(stack: Stack) -> dict[str, str]:
    """Every object of the lake bucket with its ETag."""
    from infra.local.health import s3_client

    s3 = s3_client(stack.topology, stack.credentials(), timeout=30)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=catalog.LAKE_BUCKET)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}
