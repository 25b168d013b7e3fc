"""Faults during training heal by themselves and lose nothing: a killed scheduler, a killed database.

Each test kills one process of the fault suite's stack while the mapped ``tune`` tasks run, then checks
that the training run still succeeds without any human action within :data:`RECOVERY_BOUND_S`, that the
search ends with exactly its trial budget of finished trials and one child run per trial, and that
``status`` reports nothing stuck. Recovery times are printed.
"""

from __future__ import annotations

import pytest

from infra import catalog
from infra.local import Stack
from tests.integration.faults import faults

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

#: A task whose process died is failed after Airflow's task heartbeat timeout (60 s) and retried after its
#: retry delay (10 s, exponential): the whole run must still end well within this bound after the fault.
RECOVERY_BOUND_S = 300


def check_search(stack: Stack) -> faults.SearchOutcome:
    outcome = faults.last_search(stack)
    print(f"  search: {outcome.finished_trials}/{outcome.budget} finished, other trials {outcome.other_trials}, "
          f"{outcome.child_runs} child runs")  # fmt: skip
    assert outcome.finished_trials == outcome.budget, outcome
    assert outcome.child_runs == outcome.finished_trials, outcome
    status = stack.status()
    assert status["healthy"], {n: e["detail"] for n, e in status["services"].items() if not e["healthy"]}
    assert not status.get("dag_runs", {}).get("stuck"), status["dag_runs"]
    return outcome


def test_scheduler_killed_mid_tune(fault_stack: Stack) -> None:
    """The LocalExecutor's workers of the killed scheduler must not keep its database locks (they used to:
    the run stayed `running` for 20 minutes with a `tune` task never requeued)."""
    run = faults.run_dag(
        fault_stack,
        faults.TRAINING_DAG,
        fault=lambda: faults.kill(fault_stack, catalog.AIRFLOW_SCHEDULER),
        when=faults.tune_running,
        timeout_s=RECOVERY_BOUND_S + 300,
    )
    print(f"scheduler SIGKILLed mid-tune: run {run.state} {run.recovered_s:.1f} s after the kill")
    assert run.state == "success", run.tasks
    assert run.recovered_s is not None and run.recovered_s < RECOVERY_BOUND_S
    check_search(fault_stack)


def test_postgres_killed_mid_tune(fault_stack: Stack) -> None:
    """The trials in flight must be failed and retried, not left RUNNING and counted (the search used to
    end with 18 of its 20 trials and 18 child runs, silently)."""
    run = faults.run_dag(
        fault_stack,
        faults.TRAINING_DAG,
        fault=lambda: faults.kill(fault_stack, catalog.POSTGRES),
        when=faults.tune_running,
        timeout_s=RECOVERY_BOUND_S + 300,
    )
    print(f"postgres SIGKILLed mid-tune: run {run.state} {run.recovered_s:.1f} s after the kill")
    assert run.state == "success", run.tasks
    assert run.recovered_s is not None and run.recovered_s < RECOVERY_BOUND_S
    check_search(fault_stack)
