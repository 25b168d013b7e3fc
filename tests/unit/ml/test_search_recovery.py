"""Crash recovery of the search: trials of killed workers are reclaimed by heartbeat and retried.

Workers run as real processes on the SQLite study and are SIGKILLed mid-trial; heartbeats every second
and a 3 s grace period keep the tests short.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from ml.lake import Lake
from ml.search import SearchHandle, TrialTally, finish_search, prepare_search, run_worker
from ml.settings import MLSettings
from ml.spec import get_spec
from ml.tracking import PARENT_TAG, child_runs, counts_toward_budget, retry_of
from tests.unit.ml.test_search import land

PID_ATTR = "test.pid"
BUDGET = 3


@pytest.fixture
def settings(ml_env: MLSettings, monkeypatch: pytest.MonkeyPatch) -> MLSettings:
    """The test environment with fast heartbeats (also for the worker processes, which read the env)."""
    fast = {"MLOPS_TRIAL_HEARTBEAT_S": "1", "MLOPS_TRIAL_GRACE_S": "3", "MLOPS_N_TRIALS": str(BUDGET)}
    for key, value in fast.items():
        monkeypatch.setenv(key, value)
    return MLSettings()


def _stalling_worker(handle: dict[str, str], env: dict[str, str], worker: int, stall_s: float) -> None:
    """A tuning worker whose first trial stalls for ``stall_s`` once its configuration is sampled."""
    os.environ.update(env)
    import ml.search_objective  # where the objective looks suggest_params up

    sample = ml.search_objective.suggest_params
    stalled: list[int] = []

    def suggest(trial: optuna.Trial, *args: Any) -> dict[str, Any]:
        params = sample(trial, *args)
        if not stalled:
            stalled.append(trial.number)
            trial.set_user_attr(PID_ATTR, os.getpid())
            time.sleep(stall_s)
        return params

    ml.search_objective.suggest_params = suggest
    settings = MLSettings()
    run_worker(SearchHandle(**handle), get_spec("breast_cancer"), settings, Lake.from_env(settings.lake_bucket), worker)


def _start(handle: SearchHandle, worker: int, stall_s: float) -> multiprocessing.process.BaseProcess:
    env = {k: v for k, v in os.environ.items() if k.startswith(("MLOPS_", "AWS_", "MLFLOW_"))}
    proc = multiprocessing.get_context("spawn").Process(
        target=_stalling_worker, args=(handle.model_dump(), env, worker, stall_s)
    )
    proc.start()
    return proc


def _stalled_trial(study: optuna.Study, proc: multiprocessing.process.BaseProcess, timeout: float = 180) -> FrozenTrial:
    """The RUNNING trial that ``proc`` stalls in, once its configuration is in the study."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.is_alive(), f"worker exited with {proc.exitcode}"
        for trial in study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(PID_ATTR) == proc.pid and "family" in trial.params:
                return trial
        time.sleep(0.2)
    raise AssertionError("the worker's trial never started")


def _kill(proc: multiprocessing.process.BaseProcess) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


def _assert_recovered(study: optuna.Study, killed: FrozenTrial, handle: SearchHandle) -> list[FrozenTrial]:
    """The killed trial FAILed and was retried once; the budget and the child runs are exact."""
    trials = {t.number: t for t in study.get_trials(deepcopy=True)}
    assert trials[killed.number].state is TrialState.FAIL
    retries = [t for t in trials.values() if retry_of(t) == killed.number]
    assert len(retries) == 1
    assert retries[0].params == killed.params and counts_toward_budget(retries[0])
    counted = sorted(t.number for t in trials.values() if counts_toward_budget(t))
    assert len(counted) == BUDGET
    children = child_runs(MlflowClient(), handle.parent_run_id)
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == counted
    assert [c.data.tags.get("optuna.retry_of") for c in children].count(str(killed.number)) == 1
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    metrics = MlflowClient().get_run(handle.parent_run_id).data.metrics
    assert metrics["trials_complete"] + metrics["trials_pruned"] == metrics["trials_counted"] == BUDGET
    assert (metrics["trials_interrupted"], metrics["trials_retried"], metrics["trials_failed"]) == (1, 1, 0)
    return retries


def test_a_killed_worker_s_trial_is_retried_by_the_next_worker(lake: Lake, settings: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    land(spec, lake, settings)
    handle = prepare_search(spec, settings, lake)
    study = optuna.load_study(study_name=handle.study_name, storage=settings.optuna_storage)
    proc = _start(handle, worker=0, stall_s=600)
    killed = _stalled_trial(study, proc)
    time.sleep(1.5)  # at least one heartbeat after the configuration
    _kill(proc)
    assert study.get_trials(deepcopy=True)[killed.number].state is TrialState.RUNNING  # until reclaimed

    # the worker runs the free slots, waits out the grace period, reclaims the trial and runs its retry
    report = run_worker(handle, spec, settings, lake, worker=1)
    assert report.child_runs_logged == BUDGET
    finish_search(handle, spec, settings, lake)
    _assert_recovered(study, killed, handle)


def test_finish_waits_for_a_live_worker_and_completes_a_dead_one_s_budget(lake: Lake, settings: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    land(spec, lake, settings)
    handle = prepare_search(spec, settings, lake)
    study = optuna.load_study(study_name=handle.study_name, storage=settings.optuna_storage)
    dead, live = _start(handle, worker=0, stall_s=600), _start(handle, worker=1, stall_s=9)
    killed, slow = _stalled_trial(study, dead), _stalled_trial(study, live)
    time.sleep(1.5)
    _kill(dead)

    finish_search(handle, spec, settings, lake)  # no worker of its own is left for the dead one's trial
    live.join(60)
    assert live.exitcode == 0
    trials = {t.number: t for t in study.get_trials(deepcopy=True)}
    # the live worker's slow trial (three times the grace period) was waited for, not taken for dead
    assert trials[slow.number].state is TrialState.COMPLETE
    retry = _assert_recovered(study, killed, handle)[0]
    children = {int(c.data.tags["optuna.trial_number"]): c for c in child_runs(MlflowClient(), handle.parent_run_id)}
    assert children[retry.number].data.tags["worker"] == "finish"  # finish ran the retry itself
    assert children[slow.number].data.tags["worker"] == "1"


def test_a_trial_that_died_before_its_first_heartbeat_is_reclaimed(lake: Lake, settings: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    land(spec, lake, settings)
    handle = prepare_search(spec, settings, lake)
    # a process without heartbeats (or one that lost the database right after starting a trial)
    orphan = optuna.load_study(study_name=handle.study_name, storage=settings.optuna_storage).ask()
    run_worker(handle, spec, settings, lake)
    study = optuna.load_study(study_name=handle.study_name, storage=settings.optuna_storage)
    tally = TrialTally.of(study.get_trials(deepcopy=False))
    assert study.get_trials(deepcopy=False)[orphan.number].state is TrialState.FAIL
    assert (tally.counted, tally.interrupted, tally.retried, tally.running, tally.waiting) == (BUDGET, 1, 1, 0, 0)


def test_finish_logs_the_child_runs_a_killed_worker_left_out(lake: Lake, settings: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    land(spec, lake, settings)
    handle = prepare_search(spec, settings, lake)
    run_worker(handle, spec, settings, lake, log_trials=False)  # as if killed before its queue was flushed
    client = MlflowClient()
    half = client.create_run(  # killed between creating and terminating the run of trial 0
        handle.experiment_id, tags={PARENT_TAG: handle.parent_run_id, "optuna.trial_number": "0"}
    )
    finish_search(handle, spec, settings, lake)
    children = child_runs(client, handle.parent_run_id)
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(BUDGET))
    assert {c.data.tags["worker"] for c in children} == {"finish"}
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
