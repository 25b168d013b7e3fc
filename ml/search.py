"""The hyper-parameter search: an Optuna study logged to MLflow as one parent run with a child run per trial.

The search runs in three phases that map onto Airflow tasks:

1. :func:`prepare_search` creates (or finds again) the study and the MLflow parent run;
2. :func:`run_worker` runs trials on that shared study; any number of workers, in any processes, work on
   it at once and together stop at the trial budget;
3. :func:`ml.search_finish.finish_search` refits the best configuration on the whole training split,
   evaluates it on the test split, and logs parameters, metrics, figures and the model (signature, input
   example, dataset spec and data version) to the parent run.

All three are idempotent, so a retried Airflow task neither duplicates nor corrupts anything.
:func:`run_search` chains them for notebooks, tests and benchmarks. This module orchestrates; the parts
live in their own modules, whose public names it re-exports (``from ml.search import finish_search``):

* :mod:`ml.search_study`: the study's Optuna storage (heartbeats, SQLite WAL), sampler and pruner;
* :mod:`ml.search_budget`: the trial budget: which trials count (:class:`TrialTally`) and running trials
  until it is full (:func:`complete_budget`);
* :mod:`ml.search_objective`: the objective, k-fold CV of one sampled configuration (:func:`make_objective`);
* :mod:`ml.search_finish`: the last phase (:func:`finish_search`) and how the model is saved.

**The budget.** A finished search holds exactly ``n_trials`` COMPLETE or PRUNED trials and exactly one
MLflow child run per such trial; every other trial is FAIL and has no child run (see
:mod:`ml.search_budget`). The parent run records how many trials failed, were interrupted and were retried.

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

import multiprocessing
import time
import uuid

import mlflow
import optuna
from threadpoolctl import threadpool_limits

from ml.contracts import SearchHandle, SearchRun, SearchRunTags, SplitManifest, WorkerReport
from ml.etl.split import current_split_manifest_key, load_split
from ml.lake import Lake
from ml.model import families_for, to_matrix, to_target
from ml.search_budget import BUDGET_ATTR, CAUGHT, OVER_BUDGET, POLL_S, TrialTally, complete_budget, trial_budget
from ml.search_finish import MODEL_ARTIFACT, SAFE_TYPE_PREFIXES, finish_search, model_requirements, skops_trusted_types
from ml.search_objective import make_objective
from ml.search_study import load_study, redacted_url, study_storage
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import ChildRunLogger, experiment_id, tracking_client

__all__ = [
    "BUDGET_ATTR",
    "CAUGHT",
    "METRIC_ATTR",
    "MODEL_ARTIFACT",
    "OVER_BUDGET",
    "POLL_S",
    "SAFE_TYPE_PREFIXES",
    "SearchHandle",
    "TrialTally",
    "complete_budget",
    "finish_search",
    "make_objective",
    "model_requirements",
    "prepare_search",
    "run_search",
    "run_worker",
    "skops_trusted_types",
    "trial_budget",
]

METRIC_ATTR = "metric"  # study user attribute: the search's metric


def _search_params(spec: DatasetSpec, settings: MLSettings, manifest: SplitManifest, study_name: str) -> dict[str, str]:
    """The parent run's parameters: the data, the budget and how the search samples, prunes and stores trials."""
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
        "optuna_storage": redacted_url(settings.optuna_storage),
        "optuna_study": study_name,
        "train_rows": manifest.rows.train,
        "test_rows": manifest.rows.test,
    }
    return {k: str(v) for k, v in params.items()}


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
        storage=study_storage(settings),
        direction=spec.metric.direction,
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        load_if_exists=True,
    )
    if "parent_run_id" in study.user_attrs:  # a retried task: the search already exists
        return SearchHandle.model_validate({k: study.user_attrs[k] for k in SearchHandle.model_fields})
    client = tracking_client(settings)
    exp_id = experiment_id(client, spec.name)
    parent = client.create_run(
        exp_id,
        run_name=f"search-{manifest.data_version}",
        tags=SearchRunTags(dataset=spec.name, data_version=manifest.data_version, study=study_name).to_tags(),
    )
    params = _search_params(spec, settings, manifest, study_name)
    client.log_batch(parent.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
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


def run_worker(
    handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake, worker: int = 0, log_trials: bool = True
) -> WorkerReport:
    """Run trials on the shared study until the whole search's budget is complete (:func:`complete_budget`).

    Each worker samples with its own seed (``seed + worker``) so parallel workers do not propose the
    same first configurations. Trials that count are logged as MLflow child runs unless ``log_trials``
    is off (the benchmark's baseline).
    """
    study = load_study(handle, settings, worker)
    budget = trial_budget(study, settings.n_trials)
    started = time.perf_counter()
    logger = (
        ChildRunLogger(tracking_client(settings), handle.parent_run_id, worker, handle.study_name)
        if log_trials
        else None
    )
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


def _worker_process(args: tuple[SearchHandle, DatasetSpec, MLSettings, str, int, bool]) -> WorkerReport:
    """A :func:`run_worker` in a pool process (top level, so that ``spawn`` can pickle it)."""
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
