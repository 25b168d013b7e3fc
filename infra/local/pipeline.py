"""A generic pipeline driver on top of :class:`~infra.local.stack.Stack`.

It triggers one DAG, then follows the DAGs that start by themselves after it (asset-scheduled), reporting
task states live.

The project's own driver (ETL -> training -> champion served by the API, then a summary) builds on these
helpers; this module knows nothing about specific DAGs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from infra.local.airflow_client import AirflowClient, AirflowError, DagRunProgress
from infra.local.stack import Stack


@dataclass(frozen=True)
class RunResult:
    """Outcome of one DAG run."""

    dag_id: str
    run_id: str
    state: str
    seconds: float


def print_progress(p: DagRunProgress) -> None:
    """Default ``on_progress``: one line per changed task, then the run's summary when it ends."""
    for task, state in sorted(p.changed.items()):
        if state is None:  # not scheduled yet: nothing to report
            continue
        print(f"  [{p.elapsed_s:6.1f} s] {p.dag_id}.{task}: {state}", flush=True)
    if p.done:
        print(f"  {p.summary()}", flush=True)


def run_pipeline(
    stack: Stack,
    trigger: str,
    then: Sequence[str] = (),
    on_progress: Callable[[DagRunProgress], None] | None = print_progress,
    timeout: float = 900.0,
) -> list[RunResult]:
    """Trigger ``trigger`` now and wait for it, then for a new run of each DAG in ``then`` and its end.

    The runs of ``then`` are started by the scheduler after the previous one (e.g. on an asset). Stops at the
    first failed run.
    """
    results: list[RunResult] = []
    with stack.airflow() as af:
        for dag_id in then:  # parse check up front: a missing DAG fails now, not after the first run
            af.wait_for_dag(dag_id, timeout=120)
        since = datetime.now(UTC)
        t = time.monotonic()
        run_id = af.trigger_dag(trigger)
        state = af.wait_for_dag_run(trigger, run_id, timeout=timeout, on_progress=on_progress)
        results.append(RunResult(trigger, run_id, state, time.monotonic() - t))
        for dag_id in then:
            if state != "success":
                break
            t = time.monotonic()
            run_id = af.wait_for_new_dag_run(dag_id, after=since, timeout=timeout)
            state = af.wait_for_dag_run(dag_id, run_id, timeout=timeout, on_progress=on_progress)
            results.append(RunResult(dag_id, run_id, state, time.monotonic() - t))
    return results


def run_pipelines(
    stack: Stack,
    pipelines: Sequence[tuple[str, Sequence[str]]],
    on_progress: Callable[[DagRunProgress], None] | None = print_progress,
    timeout: float = 900.0,
) -> list[RunResult]:
    """Trigger the first DAG of every pipeline at once, then follow each pipeline to its end.

    A pipeline is ``(trigger, then)`` as in :func:`run_pipeline`. Pipelines are independent: one that fails or
    times out is recorded (state ``failed``, ``timed out`` or, for DAGs after a failure, ``not started``) and
    the others are still followed. Returns one result per DAG, in pipeline order.
    """
    results: list[RunResult] = []
    with stack.airflow() as af:
        for trigger, then in pipelines:  # parse check up front: a missing DAG fails now, not after the runs
            for dag_id in (trigger, *then):
                af.wait_for_dag(dag_id, timeout=120)
        since = datetime.now(UTC)
        started = {trigger: af.trigger_dag(trigger) for trigger, _ in pipelines}
        for trigger, then in pipelines:
            run_id = started[trigger]
            state = _final_state(af, trigger, run_id, timeout, on_progress)
            results.append(RunResult(trigger, run_id, state, _run_seconds(af, trigger, run_id)))
            for dag_id in then:
                if state != "success":
                    results.append(RunResult(dag_id, "", "not started", 0.0))
                    continue
                try:
                    run_id = af.wait_for_new_dag_run(dag_id, after=since, timeout=timeout)
                except AirflowError:
                    results.append(RunResult(dag_id, "", "timed out", 0.0))
                    state = "timed out"
                    continue
                state = _final_state(af, dag_id, run_id, timeout, on_progress)
                results.append(RunResult(dag_id, run_id, state, _run_seconds(af, dag_id, run_id)))
    return results


def _run_seconds(af: AirflowClient, dag_id: str, run_id: str) -> float:
    """How long a DAG run ran by Airflow's own clock (runs of several pipelines overlap, so not our wait)."""
    try:
        run = af.get_dag_run(dag_id, run_id)
        start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    except (AirflowError, KeyError, TypeError, AttributeError, ValueError):
        return 0.0  # still running (timed out) or never started
    return (end - start).total_seconds()


def _final_state(
    af: AirflowClient,
    dag_id: str,
    run_id: str,
    timeout: float,
    on_progress: Callable[[DagRunProgress], None] | None,
) -> str:
    """The final state of a DAG run, or ``timed out`` when it did not end in time."""
    try:
        return af.wait_for_dag_run(dag_id, run_id, timeout=timeout, on_progress=on_progress)
    except AirflowError:
        return "timed out"


def wait_for_http(
    url: str, predicate: Callable[[httpx.Response], bool], timeout: float = 120.0, poll_s: float = 1.0
) -> httpx.Response:
    """Poll ``GET url`` until ``predicate(response)`` holds (e.g. the API serves a champion); bounded."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        try:
            r = httpx.get(url, timeout=5)
            if predicate(r):
                return r
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise TimeoutError(f"GET {url}: condition not met within {timeout:.0f} s (last: {last})")
        time.sleep(poll_s)
