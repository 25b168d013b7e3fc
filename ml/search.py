"""The hyper-parameter search: an Optuna study logged to MLflow as one parent run with a child run per trial.

The study lives in Optuna's RDB storage (Postgres in the stack, SQLite in unit tests). The search runs
in three phases that map onto Airflow tasks:

1. :func:`prepare_search` creates (or finds again) the study and the MLflow parent run;
2. :func:`run_worker` runs trials on that shared study; any number of workers, in any processes, work on
   it at once and together stop at the trial budget;
3. :func:`finish_search` refits the best configuration on the whole training split, evaluates it on the
   test split, and logs parameters, metrics, figures and the model (signature, input example, dataset
   spec and data version) to the parent run.

All three are idempotent, so a retried Airflow task neither duplicates nor corrupts anything.
:func:`run_search` chains them for notebooks, tests and benchmarks.

**The budget.** A finished search holds exactly ``n_trials`` COMPLETE or PRUNED trials (those that count,
:func:`ml.tracking.counts_toward_budget`) and exactly one MLflow child run per such trial. All other
trials are FAIL and have no child run: trials that raised (reason in their ``error`` attribute), trials
whose process died (interrupted) and trials a racing worker started when the budget was already full
(``over_budget``, stopped before sampling); other trials run in their place. The parent run records how
many trials failed, were interrupted and were retried.

**Crashes.** Every running trial writes a heartbeat to the Optuna storage every ``trial_heartbeat_s``
(Optuna's RDB heartbeat). A RUNNING trial whose heartbeat is older than ``trial_grace_s`` belongs to a
dead process (a killed worker, or one cut off from the database): the next worker that starts a trial
or waits for the others fails it and queues its configuration again
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, up to ``trial_max_retries`` times). A
worker returns only once the budget is complete: while other workers' trials hold the remaining budget
it polls every second, reclaims them if they go stale and runs their retries, so a surviving worker
reclaims a dead one's trial at most ``trial_grace_s`` + ~2 s (poll, 1 s database clock) after the death
(defaults: heartbeat 10 s, grace 30 s, so ~32 s). When every worker died, the next to start (Airflow's
retry of a ``tune`` task) or :func:`finish_search` does it: finish completes the budget the same way
before refitting, so it never finishes while a live worker still runs a trial, and runs any missing
trial itself when no worker is left.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import mlflow
import numpy as np
import optuna
import skops.io
import sqlalchemy
import sqlalchemy.orm
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models as rdb_models
from optuna.trial import FrozenTrial, TrialState
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from ml import evaluate, figures
from ml.contracts import (
    ModelMetadata,
    SearchHandle,
    SearchOutcomeTags,
    SearchResult,
    SearchRun,
    SearchRunTags,
    SplitManifest,
    WorkerReport,
)
from ml.etl.split import current_split_manifest_key, load_split
from ml.lake import Lake
from ml.model import build_pipeline, estimator_from_params, families_for, suggest_params, to_matrix, to_target
from ml.model.pipeline import build_preprocessor
from ml.model.search_space import needs_probability
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import (
    ERROR_ATTR,
    FOLD_SCORES_ATTR,
    OVER_BUDGET_ATTR,
    ChildRunLogger,
    counts_toward_budget,
    experiment_id,
    fold_scores,
    log_missing_child_runs,
    retry_of,
)

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

MODEL_ARTIFACT = "model"
METRIC_ATTR = "metric"  # study user attribute: the search's metric
BUDGET_ATTR = "n_trials"  # study user attribute: the search's trial budget
OVER_BUDGET = "over the search's trial budget"
CAUGHT = (ValueError, ArithmeticError)  # a configuration that raises these fails; the search goes on
POLL_S = 1.0  # how often a worker with nothing to run checks the trials other workers hold


def _client(settings: MLSettings) -> MlflowClient:
    if settings.tracking_uri:
        mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient()


class _RetryInterrupted(RetryHeartbeatStaleTrialCallback):
    """Queue an interrupted trial's configuration again, without the attributes of its partial run."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Heartbeat-stale callback: enqueue the retry (not for a trial stopped before sampling)."""
        if trial.user_attrs.get(OVER_BUDGET_ATTR):
            return
        trial.user_attrs = {}  # a copy (fail_stale_trials deep-copies); fold scores etc. belong to the dead run
        super().__call__(study, trial)


class _HeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage with trial heartbeats that survive database blips and reclaim every dead trial.

    Optuna's heartbeat thread dies at the first database error, after which a trial that is still alive
    would be taken for a dead one: here a failed heartbeat is logged and the next one tried. Optuna also
    never fails a RUNNING trial that has no heartbeat row at all (its process died between starting the
    trial and the first heartbeat, e.g. because the database went away); here such a trial is stale once
    it started more than the grace period ago (by the workers' clocks).
    """

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a heartbeat; a database error is logged, not raised (the thread would stop beating)."""
        try:
            super().record_heartbeat(trial_id)
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("could not record the heartbeat of trial id %d: %s", trial_id, error)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        trials, beats = rdb_models.TrialModel.__table__, rdb_models.TrialHeartbeatModel.__table__
        with sqlalchemy.orm.Session(self.engine) as session:
            # Heartbeats carry the database's clock (as in Optuna), start times the worker's (naive UTC).
            db_now = session.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one().replace(tzinfo=None)
            rows = session.execute(
                sqlalchemy.select(trials.c.trial_id, trials.c.datetime_start, beats.c.heartbeat)
                .select_from(trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
                .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING)
            ).all()
        grace = timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 1))
        now = datetime.now(UTC).replace(tzinfo=None)
        return [
            trial_id
            for trial_id, started, heartbeat in rows
            if (db_now - heartbeat > grace if heartbeat is not None else started is not None and now - started > grace)
        ]


def _storage(settings: MLSettings) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with trial heartbeats; SQLite files get write-ahead logging for concurrent workers."""
    # pool_pre_ping survives a database restart between tasks; one connection per worker is plenty.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat API is experimental since 2.9
        storage = _HeartbeatStorage(
            settings.optuna_storage,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=settings.trial_heartbeat_s,
            grace_period=settings.trial_grace_s,
            heartbeat_stale_trial_callback=_RetryInterrupted(max_retry=settings.trial_max_retries),
        )
    if storage.engine.dialect.name == "sqlite":
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
        storage.engine.dispose()  # connections opened so far predate the listener
    return storage


def _sqlite_wal(connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once across processes; NORMAL sync is durable in WAL mode
    # except for the last commits on power loss, and saves an fsync per trial update.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@', 1)[1]}" if "@" in rest else url


def prepare_search(spec: DatasetSpec, settings: MLSettings, lake: Lake, study_name: str | None = None) -> SearchHandle:
    """Create the study and the parent run for a search on the current split, or find them again.

    ``study_name`` makes the call idempotent (Airflow passes its run id); without one a fresh search
    is created.
    """
    split_key = current_split_manifest_key(spec, lake)
    manifest = lake.get_model(split_key, SplitManifest)
    study_name = study_name or f"{spec.name}-{manifest.data_version}-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(
        study_name=study_name,
        storage=_storage(settings),
        direction=spec.metric.direction,
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        load_if_exists=True,
    )
    if "parent_run_id" in study.user_attrs:  # a retried task: the search already exists
        return SearchHandle.model_validate({k: study.user_attrs[k] for k in SearchHandle.model_fields})
    client = _client(settings)
    exp_id = experiment_id(client, spec.name)
    parent = client.create_run(
        exp_id,
        run_name=f"search-{manifest.data_version}",
        tags=SearchRunTags(dataset=spec.name, data_version=manifest.data_version, study=study_name).to_tags(),
    )
    params = {
        "dataset": spec.name,
        "data_version": manifest.data_version,
        "schema_hash": spec.fingerprint(),
        "n_trials": settings.n_trials,
        "tuning_workers": settings.tuning_workers,
        "cv_folds": settings.cv_folds,
        "task": spec.task.value,
        "metric": spec.metric.name,
        "direction": spec.metric.direction,
        "seed": settings.seed,
        "families": ",".join(families_for(spec.task)),
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "optuna_storage": _redacted(settings.optuna_storage),
        "optuna_study": study_name,
        "train_rows": manifest.rows.train,
        "test_rows": manifest.rows.test,
    }
    client.log_batch(parent.info.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
    handle = SearchHandle(
        study_name=study_name,
        parent_run_id=parent.info.run_id,
        experiment_id=exp_id,
        data_version=manifest.data_version,
        split_manifest=split_key,
    )
    for key, value in handle.model_dump().items():
        study.set_user_attr(key, value)
    study.set_user_attr(METRIC_ATTR, spec.metric.name)
    study.set_user_attr(BUDGET_ATTR, settings.n_trials)  # the budget of the search, whoever runs trials
    return handle


def trial_budget(study: optuna.Study, default: int) -> int:
    """The search's trial budget, as :func:`prepare_search` recorded it in the study."""
    return int(study.user_attrs.get(BUDGET_ATTR, default))


@dataclass(frozen=True)
class TrialTally:
    """Where the trials of a study stand against the budget (see the module docstring)."""

    complete: int = 0
    pruned: int = 0  # by the pruner (stops over the budget excluded)
    running: int = 0
    waiting: int = 0  # queued retries of interrupted trials
    failed: int = 0  # the objective raised
    interrupted: int = 0  # the process died (failed by the heartbeat check)
    retried: int = 0  # counted trials that re-ran an interrupted trial's configuration

    @property
    def counted(self) -> int:
        """Trials that count toward the budget."""
        return self.complete + self.pruned

    @property
    def holding(self) -> int:
        """Trials that count, run or wait to run: the budget's slots taken."""
        return self.counted + self.running + self.waiting

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial]) -> TrialTally:
        """Tally ``trials``."""
        counts = dict.fromkeys(cls.__dataclass_fields__, 0)
        for trial in trials:
            if counts_toward_budget(trial):
                counts["complete" if trial.state is TrialState.COMPLETE else "pruned"] += 1
                counts["retried"] += retry_of(trial) is not None
            elif trial.state is TrialState.FAIL and not trial.user_attrs.get(OVER_BUDGET_ATTR):
                counts["failed" if ERROR_ATTR in trial.user_attrs else "interrupted"] += 1
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                counts[trial.state.name.lower()] += 1
        return cls(**counts)


def _holds_slot(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.RUNNING, TrialState.WAITING) or counts_toward_budget(trial)


def _admitted(trial: optuna.Trial, budget: int) -> bool:
    """Whether a trial that just started gets one of the budget's slots.

    Trial numbers are unique and ordered, so each trial looks only at the trials numbered before it that
    count, run or wait: parallel workers agree on who gets the last slots without any lock. A trial
    numbered below the budget always gets one (no read); later ones (after failures, retries or stops)
    read the study once.
    """
    if trial.number < budget:
        return True
    trials = trial.study.get_trials(deepcopy=False)
    return sum(t.number < trial.number and _holds_slot(t) for t in trials) < budget


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _record_error(trial: optuna.Trial, error: Exception) -> None:
    try:
        trial.set_user_attr(ERROR_ATTR, f"{type(error).__name__}: {error}"[:500])
    except Exception:  # the trial was reclaimed, or the database is gone: it will count as interrupted
        log.debug("could not record the error of trial %d", trial.number, exc_info=True)


def make_objective(
    spec: DatasetSpec, settings: MLSettings, x: np.ndarray, y: np.ndarray, budget: int | None = None
) -> Any:
    """The Optuna objective: k-fold CV of the spec's metric (:attr:`ml.spec.DatasetSpec.metric`) of the full pipeline.

    Folds are stratified by class for classification and shuffled (seeded) plain k-fold for regression. The
    value is the metric's own (an RMSE is positive), which the study minimises or maximises by the metric's
    direction.

    The preprocessing (imputation, scaling, encoding) has no hyper-parameters, so it is fitted once per
    fold, on that fold's training rows only, and reused by every trial: exactly what fitting the whole
    pipeline per trial would compute, minus the repeated work (sklearn's ``Pipeline(memory=...)`` idea,
    in memory). After the first fold the running score is reported once for pruning; the fold scores are
    stored with the trial. Three storage writes per trial, because with several workers every storage
    operation is a round trip to the database.

    Parallel workers can each start a trial in the instant the budget is reached; a trial that gets no
    slot of ``budget`` (:func:`_admitted`) stops its worker at once, before sampling anything, and ends
    FAIL, marked ``over_budget`` (it does not count and is not logged). An exception is recorded in the trial's
    ``error`` attribute before it propagates; a ``BaseException`` such as Airflow's
    ``AirflowTaskTerminated`` is not (Optuna leaves that trial RUNNING: the heartbeat check reclaims and
    retries it as interrupted).
    """
    splitter = StratifiedKFold if spec.task.is_classification else KFold
    folds = list(splitter(settings.cv_folds, shuffle=True, random_state=settings.seed).split(x, y))
    metric, families = spec.metric, families_for(spec.task)
    scorer, probability = get_scorer(metric.scorer), needs_probability(metric)
    prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for train_idx, valid_idx in folds:
        preprocessor = build_preprocessor(spec).fit(x[train_idx], y[train_idx])
        prepared.append(
            (preprocessor.transform(x[train_idx]), y[train_idx], preprocessor.transform(x[valid_idx]), y[valid_idx])
        )

    def objective(trial: optuna.Trial) -> float:
        if budget is not None and not _admitted(trial, budget):
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            trial.study.stop()
            log.info("trial %d is %s: this worker stops", trial.number, OVER_BUDGET)
            return float("nan")  # Optuna fails a NaN trial (with one log line; an exception adds a traceback)
        try:
            return evaluate_trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # not BaseException: a terminated task (Airflow's SIGTERM) is interrupted
            _record_error(trial, error)
            raise

    def evaluate_trial(trial: optuna.Trial) -> float:
        params = suggest_params(trial, families)
        estimator = estimator_from_params(params, settings.seed, probability=probability)
        scores: list[float] = []
        for k, (x_fit, y_fit, x_valid, y_valid) in enumerate(prepared):
            scores.append(metric.from_scorer(float(scorer(clone(estimator).fit(x_fit, y_fit), x_valid, y_valid))))
            if k == 0:
                trial.report(scores[0], 0)
                if trial.should_prune():
                    trial.set_user_attr(FOLD_SCORES_ATTR, scores)
                    raise optuna.TrialPruned()
        trial.set_user_attr(FOLD_SCORES_ATTR, scores)
        value = float(np.mean(scores))
        if not np.isfinite(value):  # Optuna would fail the trial without saying why
            raise ArithmeticError(f"the mean CV score is {value}")
        return value

    return objective


class _StopAtBudget:
    """Optuna callback: stop this worker once every slot of the budget is taken or too many trials failed."""

    def __init__(self, budget: int, max_failed: int) -> None:
        self.budget = budget
        self.max_failed = max_failed

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Stop the study's optimisation loop in this process when there is nothing left for it."""
        tally = TrialTally.of(study.get_trials(deepcopy=False))
        if tally.holding >= self.budget or tally.failed + tally.interrupted > self.max_failed:
            study.stop()


def complete_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    budget: int,
    settings: MLSettings,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> TrialTally:
    """Run trials until ``budget`` of them count; returns the final tally.

    Before each trial (Optuna does this) and on every poll, trials of dead processes are failed and their
    configurations queued again. When the remaining slots are held by other workers' running trials,
    this waits (polling every :data:`POLL_S`) until those finish or go stale. Raises once more than
    ``settings.max_failed_trials`` (default: the budget) trials failed or were interrupted. A trial of
    this process that another one took for dead (no heartbeat for the grace period) is dropped: its
    retry counts instead.
    """
    max_failed = budget if settings.max_failed_trials is None else settings.max_failed_trials
    stop = _StopAtBudget(budget, max_failed)
    current: list[int] = []  # number of the trial this process runs (to recognise one reclaimed under it)

    def tracked(trial: optuna.Trial) -> float:
        current[:] = [trial.number]
        return objective(trial)

    while True:
        _fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        tally = TrialTally.of(trials)
        if tally.failed + tally.interrupted > max_failed:
            errors = {t.user_attrs[ERROR_ATTR] for t in trials if ERROR_ATTR in t.user_attrs}
            raise RuntimeError(
                f"study {study.study_name}: {tally.failed} trials failed and {tally.interrupted} were "
                f"interrupted (limit {max_failed}); errors: {sorted(errors)[:5]}"
            )
        if tally.counted >= budget:
            return tally
        if tally.waiting or tally.holding < budget:
            try:
                study.optimize(tracked, n_trials=budget + max_failed, callbacks=[*callbacks, stop], catch=CAUGHT)
            except ValueError:  # Optuna refuses to tell a trial that another process already failed
                mine = [t for t in study.get_trials(deepcopy=False) if current and t.number == current[0]]
                if not mine or mine[0].state is not TrialState.FAIL or ERROR_ATTR in mine[0].user_attrs:
                    raise
                log.warning("trial %d was taken for dead (no heartbeat in time); its retry counts", current[0])
        else:
            time.sleep(POLL_S)


def _load_study(handle: SearchHandle, settings: MLSettings, seed_offset: int) -> optuna.Study:
    return optuna.load_study(
        study_name=handle.study_name,
        storage=_storage(settings),
        # Multivariate TPE with groups models the conditional space (each family's own parameters).
        # constant_liar is off: with it, every suggestion re-reads the study from the database (Optuna
        # disables its per-trial cache), which costs more than the rare duplicate a few workers propose.
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed + seed_offset, multivariate=True, group=True, constant_liar=False
        ),
        # Prune after the first fold when it is below the median first fold of earlier trials: bad
        # configurations of the slow families (forests, boosting) then cost one fit instead of k.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
    )


def run_worker(
    handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake, worker: int = 0, log_trials: bool = True
) -> WorkerReport:
    """Run trials on the shared study until the whole search's budget is complete (:func:`complete_budget`).

    Each worker samples with its own seed (``seed + worker``) so parallel workers do not propose the
    same first configurations. Trials that count are logged as MLflow child runs unless ``log_trials``
    is off (the benchmark's baseline).
    """
    study = _load_study(handle, settings, worker)
    budget = trial_budget(study, settings.n_trials)
    started = time.perf_counter()
    logger = ChildRunLogger(_client(settings), handle.parent_run_id, worker, handle.study_name) if log_trials else None
    try:
        if TrialTally.of(study.get_trials(deepcopy=False)).counted < budget:
            train, _, _ = load_split(spec, lake, handle.split_manifest)
            objective = make_objective(spec, settings, to_matrix(train, spec), to_target(train, spec), budget)
            with threadpool_limits(1):  # parallelism comes from workers, not from BLAS/OpenMP threads
                complete_budget(study, objective, budget, settings, [logger] if logger else [])
    finally:
        if logger:
            logger.close()  # also when the search raised: what finished is logged
    return WorkerReport(
        worker=worker,
        seconds=round(time.perf_counter() - started, 3),
        trials_in_study=len(study.get_trials(deepcopy=False)),
        child_runs_logged=logger.logged if logger else 0,
        logging_errors=logger.errors if logger else 0,
    )


def finish_search(handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake) -> SearchResult:
    """Complete the budget, refit the best trial on all training data, evaluate it, log everything to the parent run.

    The budget is complete before anything else happens (:func:`complete_budget`): this waits for trials
    that live workers still run, reclaims those of dead workers (heartbeat) and runs any missing trial
    itself (child runs tagged ``worker=finish``), so the search always ends with exactly its budget of
    counted trials. Counted trials whose child run a killed worker never logged are logged here.

    Returns the model URI, model id, run id and metrics. Idempotent: if the parent run already holds a
    model, that model is returned.
    """
    client = _client(settings)
    parent = client.get_run(handle.parent_run_id)
    if SearchOutcomeTags.tag_key("model_id") in parent.data.tags:  # a retried task: the model is logged
        return SearchOutcomeTags.from_tags(parent.data.tags).result
    study = _load_study(handle, settings, settings.tuning_workers)  # its own seed, after the workers'
    budget = trial_budget(study, settings.n_trials)  # a study attribute: one storage read
    train, test, manifest = load_split(spec, lake, handle.split_manifest)
    x_train, y_train = to_matrix(train, spec), to_target(train, spec)
    x_test, y_test = to_matrix(test, spec), to_target(test, spec)
    tally = TrialTally.of(study.get_trials(deepcopy=False))
    if tally.counted < budget:  # a worker died and no other one completed the budget
        log.warning("study %s: %d of %d trials count (%s); completing the budget here", handle.study_name,
                    tally.counted, budget, tally)  # fmt: skip
        objective = make_objective(spec, settings, x_train, y_train, budget)
        logger = ChildRunLogger(client, handle.parent_run_id, "finish", handle.study_name)
        with logger, threadpool_limits(1):
            complete_budget(study, objective, budget, settings, [logger])
    trials = study.get_trials(deepcopy=False)
    tally = TrialTally.of(trials)
    counted = [t for t in trials if counts_toward_budget(t)]
    if tally.counted != budget:  # only a bug in the accounting could get here
        raise RuntimeError(f"study {handle.study_name} has {tally.counted} counted trials, not its budget {budget}")
    log_missing_child_runs(client, handle.parent_run_id, study, counted, settings.trial_grace_s, handle.study_name)
    if not tally.complete:
        raise RuntimeError(
            f"study {handle.study_name} has no completed trial (all {tally.pruned} were pruned); "
            f"see the child runs of MLflow run {handle.parent_run_id}"
        )
    best = study.best_trial
    best_value = best.value
    if best_value is None:  # a complete trial of a single-objective study always has a value
        raise RuntimeError(f"study {handle.study_name}: the best trial {best.number} has no value")
    model = build_pipeline(spec, estimator_from_params(best.params, settings.seed, probability=True))
    model.fit(x_train, y_train)
    holdout = evaluate.holdout_metrics(model, x_test, y_test, spec)
    folds = fold_scores(best)
    example = test[spec.feature_names].head(3)
    signature = infer_signature(example, model.predict(to_matrix(example, spec)))

    mlflow.set_experiment(experiment_id=handle.experiment_id)  # the fluent API checks the active experiment
    with mlflow.start_run(run_id=handle.parent_run_id):
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.log_metrics(
            {
                "best_cv_score": float(best_value),
                "best_cv_std": float(np.std(folds)),
                "best_trial": best.number,
                "trials_counted": tally.counted,  # = n_trials = the number of child runs
                "trials_complete": tally.complete,
                "trials_pruned": tally.pruned,
                "trials_failed": tally.failed,  # the objective raised (reason: the trial's "error" attribute)
                "trials_interrupted": tally.interrupted,  # the process died; reclaimed by heartbeat
                "trials_retried": tally.retried,  # counted trials that re-ran an interrupted configuration
                **{f"test_{k}": v for k, v in holdout.items()},
            }
        )
        mlflow.log_dict(json.loads(spec.to_json()), "dataset_spec.json")
        # as the lake holds it (sorted keys): the artifact's bytes do not depend on the field order
        mlflow.log_dict(json.loads(json.dumps(manifest.model_dump(mode="json"), sort_keys=True)), "split_manifest.json")
        for name, figure in {
            "optimisation_history.png": figures.optimisation_history_figure(study),
            "param_importances.png": figures.param_importances_figure(study, best.params["family"]),
            **figures.holdout_figures(model, x_test, y_test, spec),
        }.items():
            mlflow.log_figure(figure, f"figures/{name}")
            figures.release(figure)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=skops_trusted_types(model),
            pip_requirements=model_requirements(),
            metadata=ModelMetadata(
                dataset_spec=json.loads(spec.to_json()),
                data_version=handle.data_version,
                schema_hash=spec.fingerprint(),
                task=spec.task.value,
                metric=spec.metric.name,
                cv_score=float(best_value),
                test_metrics=holdout,
                family=best.params["family"],
            ).model_dump(mode="json"),
        )
        result = SearchResult(
            model_uri=info.model_uri,
            model_id=info.model_id,
            run_id=handle.parent_run_id,
            data_version=handle.data_version,
            family=best.params["family"],
            best_params=best.params,
            cv_score=float(best_value),
            test_metrics=holdout,
        )
        mlflow.set_tags(SearchOutcomeTags(model_id=info.model_id, result=result).to_tags())
    return result


def model_requirements() -> list[str]:
    """Exact pins of what loading the model needs (not the whole project, which MLflow would guess)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "scipy", "mlflow-skinny")]


SAFE_TYPE_PREFIXES = ("numpy.", "sklearn.", "scipy.")


def skops_trusted_types(model: Any) -> list[str]:
    """Types skops does not trust by default that this model needs; only NumPy/SciPy/sklearn types pass.

    The model is saved with skops (MLflow 3's default, no arbitrary code on load); anything outside
    those libraries would be a reason to stop, not to trust.
    """
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    unexpected = [t for t in untrusted if not t.startswith(SAFE_TYPE_PREFIXES)]
    if unexpected:
        raise TypeError(f"the model contains types that are unsafe to load with skops: {unexpected}")
    return list(untrusted)


def _worker_process(args: tuple[SearchHandle, DatasetSpec, MLSettings, str, int, bool]) -> WorkerReport:
    handle, spec, settings, bucket, worker, log_trials = args
    return run_worker(handle, spec, settings, Lake.from_env(bucket), worker, log_trials)


def run_search(
    spec: DatasetSpec,
    settings: MLSettings,
    lake: Lake,
    workers: int = 1,
    log_trials: bool = True,
    finish: bool = True,
    start_method: str = "spawn",
) -> SearchRun:
    """Prepare, run ``workers`` worker processes on one study, and finish: the whole search in one call.

    ``start_method`` is the multiprocessing start method of the workers ("spawn" is always safe;
    "fork" starts faster on Linux when the caller has no threads running).
    """
    handle = prepare_search(spec, settings, lake)
    started = time.perf_counter()
    if workers == 1:
        reports = [run_worker(handle, spec, settings, lake, 0, log_trials)]
    else:
        jobs = [(handle, spec, settings, lake.bucket, w, log_trials) for w in range(workers)]
        with multiprocessing.get_context(start_method).Pool(workers) as pool:
            reports = pool.map(_worker_process, jobs)
    search_seconds = time.perf_counter() - started
    result = finish_search(handle, spec, settings, lake) if finish else None
    return SearchRun(handle=handle, workers=reports, search_seconds=search_seconds, result=result)
