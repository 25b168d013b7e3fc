"""MLflow tracking for the search: the parent run, and child runs logged off the hot path.

Every trial that counts toward the search's budget (see :func:`counts_toward_budget`) becomes exactly one
MLflow child run (``mlflow.parentRunId`` tag), whichever process ran it; FAIL trials (failed, interrupted
or stopped over the budget) get none (the parent run counts them). :class:`ChildRunLogger` is an Optuna
callback that hands finished trials to a background thread, which writes each one with three REST calls
(create run with tags, one ``log_batch`` with params and metrics, terminate). The search never waits on
the tracking server; :meth:`ChildRunLogger.close` flushes. A worker killed before its queue was flushed
leaves trials without a run: :func:`log_missing_child_runs` fills those in when the search finishes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import mlflow
import numpy as np
import optuna
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ml.settings import MLSettings

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
STATE_TO_STATUS = {
    optuna.trial.TrialState.COMPLETE: "FINISHED",
    optuna.trial.TrialState.PRUNED: "KILLED",
    optuna.trial.TrialState.FAIL: "FAILED",
}


def tracking_client(settings: MLSettings) -> MlflowClient:
    """An MLflow client of the settings' tracking server (MLflow's own default when none is set)."""
    if settings.tracking_uri:
        mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient()


def experiment_id(client: MlflowClient, name: str) -> str:
    """Id of the named experiment, created if missing (safe when several processes race to create it)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except mlflow.exceptions.MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


FOLD_SCORES_ATTR = "fold_scores"
ERROR_ATTR = "error"  # user attribute: why the objective raised (its trial is FAIL, not interrupted)
OVER_BUDGET_ATTR = "over_budget"  # user attribute: a FAIL trial stopped before sampling, the budget being full
RETRY_OF_ATTR = "failed_trial"  # system attribute RetryHeartbeatStaleTrialCallback sets on a retry
COUNTED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial is one of the search's budget: COMPLETE, or PRUNED by the pruner.

    FAIL trials (the objective raised, the process died, or the budget was already full when it started)
    do not count; the search runs other trials in their place.
    """
    return trial.state in COUNTED_STATES


def retry_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """Number of the interrupted trial whose configuration this trial runs again, if it is a retry."""
    value = trial.system_attrs.get(RETRY_OF_ATTR)
    return int(value) if value is not None else None


def fold_scores(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Per-fold CV scores of a trial (all folds, or the folds run before it was pruned)."""
    return [float(v) for v in trial.user_attrs.get(FOLD_SCORES_ATTR, [])]


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


@dataclass(frozen=True)
class _Job:
    trial: optuna.trial.FrozenTrial
    worker: int | str


class ChildRunLogger:
    """Optuna callback that logs each finished trial as a child run of ``parent_run_id``, asynchronously.

    Only trials that count toward the budget are logged (:func:`counts_toward_budget`). Use it as a
    context manager (or call :meth:`close`) so pending runs are flushed before the process ends.
    Logging errors are counted and logged, never raised into the search.
    """

    def __init__(self, client: MlflowClient, parent_run_id: str, worker: int | str = 0, study_name: str = "") -> None:
        # set_terminated would otherwise GET the run again to print its URL: one extra round trip per trial.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client = client
        self.parent_run_id = parent_run_id
        self.experiment_id = client.get_run(parent_run_id).info.experiment_id
        self.worker = worker
        self.study_name = study_name
        self.logged = 0
        self.errors = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="mlflow-child-runs", daemon=True)
        self._thread.start()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: enqueue the finished trial if it counts toward the budget."""
        if counts_toward_budget(trial):
            self._queue.put(_Job(trial, self.worker))

    def __enter__(self) -> ChildRunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 120.0) -> None:
        """Flush every queued trial to MLflow and stop the background thread."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("MLflow child-run logger did not flush within %.0f s", timeout)

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._log(job)
                self.logged += 1
            except Exception:  # tracking must never break the search
                self.errors += 1
                log.exception("could not log trial %s to MLflow", job.trial.number)

    def _log(self, job: _Job) -> None:
        trial = job.trial
        name = f"trial-{trial.number:04d}"
        tags = {
            PARENT_TAG: self.parent_run_id,
            RUN_NAME_TAG: name,
            "optuna.study": self.study_name,
            "optuna.trial_number": str(trial.number),
            "optuna.state": trial.state.name,
            "family": str(trial.params.get("family", "")),
            "worker": str(job.worker),
        }
        if (original := retry_of(trial)) is not None:
            tags["optuna.retry_of"] = str(original)  # the interrupted trial whose configuration this re-ran
        run = self.client.create_run(self.experiment_id, start_time=_ms(trial.datetime_start), tags=tags, run_name=name)
        now = int(time.time() * 1000)
        metrics = []
        if trial.value is not None:
            metrics.append(Metric("cv_mean", float(trial.value), now, 0))
        scores = fold_scores(trial)
        if scores:
            metrics.append(Metric("cv_std", float(np.std(scores)), now, 0))
            metrics.append(Metric("folds_run", float(len(scores)), now, 0))
        metrics.extend(Metric("cv_fold_score", float(v), now, k) for k, v in enumerate(scores))
        if trial.duration is not None:
            metrics.append(Metric("duration_s", trial.duration.total_seconds(), now, 0))
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
        self.client.set_terminated(
            run.info.run_id, status=STATE_TO_STATUS.get(trial.state, "FAILED"), end_time=_ms(trial.datetime_complete)
        )


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Any]:
    """All child runs of a parent run (one per trial of the search's budget)."""
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=50000
    )


def log_missing_child_runs(
    client: MlflowClient,
    parent_run_id: str,
    study: optuna.Study,
    trials: Sequence[optuna.trial.FrozenTrial],
    settle_s: float,
    study_name: str = "",
) -> int:
    """Log a child run for each of ``trials`` that has none yet; returns how many were logged.

    A worker killed after a trial finished but before its background thread logged it leaves the trial
    without a run; one killed between creating and terminating a run leaves it RUNNING: such runs are
    deleted and logged again. A trial that finished less than ``settle_s`` ago may still be on its way
    from a live worker's queue, so it gets that long before it is taken for missing. The runs are tagged
    ``worker=finish``.
    """

    def missing() -> tuple[list[optuna.trial.FrozenTrial], list[str]]:
        runs = child_runs(client, parent_run_id)
        done = {r.data.tags.get("optuna.trial_number") for r in runs if r.info.status != "RUNNING"}
        absent = [t for t in trials if str(t.number) not in done]
        numbers = {str(t.number) for t in absent}
        partial = [r.info.run_id for r in runs if r.data.tags.get("optuna.trial_number") in numbers]
        return absent, partial

    absent, partial = missing()
    ages = [(datetime.now() - t.datetime_complete).total_seconds() for t in absent if t.datetime_complete]
    if ages and min(ages) < settle_s:
        time.sleep(settle_s - min(ages))
        absent, partial = missing()
    if not absent:
        return 0
    log.warning("logging %d child runs that their workers did not log (killed?)", len(absent))
    for run_id in partial:
        client.delete_run(run_id)
    with ChildRunLogger(client, parent_run_id, "finish", study_name) as logger:
        for trial in absent:
            logger(study, trial)
    if logger.errors:
        raise RuntimeError(f"could not log {logger.errors} child runs of MLflow run {parent_run_id}")
    return logger.logged
