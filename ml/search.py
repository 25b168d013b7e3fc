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
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
import skops.io
import sqlalchemy
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from ml import evaluate
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import build_pipeline, estimator_from_params, suggest_params, to_matrix, to_target
from ml.model.pipeline import build_preprocessor
from ml.model.search_space import FAMILIES
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import FOLD_SCORES_ATTR, ChildRunLogger, experiment_id, fold_scores

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

MODEL_ARTIFACT = "model"
MODEL_ID_TAG = "mlops.model_id"
OVER_BUDGET = "over the search's trial budget"


@dataclass(frozen=True)
class SearchHandle:
    """Everything a worker or the final step needs to find a search again (JSON-friendly, for XComs)."""

    study_name: str
    parent_run_id: str
    experiment_id: str
    data_version: str
    split_manifest: str

    def to_dict(self) -> dict[str, str]:
        """Plain dict form."""
        return asdict(self)


def _client(settings: MLSettings) -> MlflowClient:
    if settings.tracking_uri:
        mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient()


def _storage(settings: MLSettings) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; SQLite files get write-ahead logging for concurrent worker processes."""
    # pool_pre_ping survives a database restart between tasks; one connection per worker is plenty.
    storage = optuna.storages.RDBStorage(settings.optuna_storage, engine_kwargs={"pool_pre_ping": True})
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
    split_key = lake.get_json(f"processed/{spec.name}/current.json")["manifest"]
    manifest = lake.get_json(split_key)
    study_name = study_name or f"{spec.name}-{manifest['data_version']}-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(
        study_name=study_name,
        storage=_storage(settings),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        load_if_exists=True,
    )
    if "parent_run_id" in study.user_attrs:  # a retried task: the search already exists
        return SearchHandle(**{k: study.user_attrs[k] for k in SearchHandle.__dataclass_fields__})
    client = _client(settings)
    exp_id = experiment_id(client, str(settings.experiment))
    parent = client.create_run(
        exp_id,
        run_name=f"search-{manifest['data_version']}",
        tags={
            "mlops.dataset": spec.name,
            "mlops.data_version": manifest["data_version"],
            "mlops.study": study_name,
            "mlops.kind": "search",
        },
    )
    params = {
        "dataset": spec.name,
        "data_version": manifest["data_version"],
        "schema_hash": spec.fingerprint(),
        "n_trials": settings.n_trials,
        "tuning_workers": settings.tuning_workers,
        "cv_folds": settings.cv_folds,
        "metric": settings.metric,
        "seed": settings.seed,
        "families": ",".join(FAMILIES),
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "optuna_storage": _redacted(settings.optuna_storage),
        "optuna_study": study_name,
        "train_rows": manifest["rows"]["train"],
        "test_rows": manifest["rows"]["test"],
    }
    client.log_batch(parent.info.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
    handle = SearchHandle(
        study_name=study_name,
        parent_run_id=parent.info.run_id,
        experiment_id=exp_id,
        data_version=manifest["data_version"],
        split_manifest=split_key,
    )
    for key, value in handle.to_dict().items():
        study.set_user_attr(key, value)
    study.set_user_attr("metric", settings.metric)
    study.set_user_attr("n_trials", settings.n_trials)  # the budget of the search, whoever runs trials
    return handle


def trial_budget(study: optuna.Study, default: int) -> int:
    """The search's trial budget, as :func:`prepare_search` recorded it in the study."""
    return int(study.user_attrs.get("n_trials", default))


def make_objective(
    spec: DatasetSpec, settings: MLSettings, x: np.ndarray, y: np.ndarray, budget: int | None = None
) -> Any:
    """The Optuna objective: stratified k-fold CV of ``settings.metric`` of the full pipeline.

    The preprocessing (imputation, scaling, encoding) has no hyper-parameters, so it is fitted once per
    fold, on that fold's training rows only, and reused by every trial: exactly what fitting the whole
    pipeline per trial would compute, minus the repeated work (sklearn's ``Pipeline(memory=...)`` idea,
    in memory). After the first fold the running score is reported once for pruning; the fold scores are
    stored with the trial. Three storage writes per trial, because with several workers every storage
    operation is a round trip to the database.

    Parallel workers can each start a trial in the instant the budget is reached; a trial numbered
    beyond ``budget`` stops its worker at once, before sampling anything, and is not logged.
    """
    folds = list(StratifiedKFold(settings.cv_folds, shuffle=True, random_state=settings.seed).split(x, y))
    scorer = get_scorer(settings.metric)
    prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for train_idx, valid_idx in folds:
        preprocessor = build_preprocessor(spec).fit(x[train_idx], y[train_idx])
        prepared.append(
            (preprocessor.transform(x[train_idx]), y[train_idx], preprocessor.transform(x[valid_idx]), y[valid_idx])
        )

    def objective(trial: optuna.Trial) -> float:
        if budget is not None and trial.number >= budget:
            trial.study.stop()
            raise optuna.TrialPruned(OVER_BUDGET)
        params = suggest_params(trial)
        estimator = estimator_from_params(params, settings.seed, probability=False)
        scores: list[float] = []
        for k, (x_fit, y_fit, x_valid, y_valid) in enumerate(prepared):
            scores.append(float(scorer(clone(estimator).fit(x_fit, y_fit), x_valid, y_valid)))
            if k == 0:
                trial.report(scores[0], 0)
                if trial.should_prune():
                    trial.set_user_attr(FOLD_SCORES_ATTR, scores)
                    raise optuna.TrialPruned()
        trial.set_user_attr(FOLD_SCORES_ATTR, scores)
        return float(np.mean(scores))

    return objective


def run_worker(
    handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake, worker: int = 0, log_trials: bool = True
) -> dict[str, Any]:
    """Run trials on the shared study until the whole search reaches its trial budget.

    Each worker samples with its own seed (``seed + worker``) so parallel workers do not propose the
    same first configurations. Finished trials are logged as MLflow child runs unless ``log_trials`` is
    off (the benchmark's baseline).
    """
    train, _, _ = load_split(spec, lake, handle.split_manifest)
    x, y = to_matrix(train, spec), to_target(train, spec)
    study = optuna.load_study(
        study_name=handle.study_name,
        storage=_storage(settings),
        # Multivariate TPE with groups models the conditional space (each family's own parameters).
        # constant_liar is off: with it, every suggestion re-reads the study from the database (Optuna
        # disables its per-trial cache), which costs more than the rare duplicate a few workers propose.
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed + worker, multivariate=True, group=True, constant_liar=False
        ),
        # Prune after the first fold when it is below the median first fold of earlier trials: bad
        # configurations of the slow families (forests, boosting) then cost one fit instead of k.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
    )
    budget = trial_budget(study, settings.n_trials)
    before = len(study.get_trials(deepcopy=False))
    started = time.perf_counter()
    callbacks: list[Any] = [optuna.study.MaxTrialsCallback(budget, states=None)]
    logger = (
        ChildRunLogger(_client(settings), handle.parent_run_id, worker, handle.study_name, budget)
        if log_trials
        else None
    )
    if logger:
        callbacks.append(logger)
    if before < budget:
        with threadpool_limits(1):  # parallelism comes from workers, not from BLAS/OpenMP threads
            study.optimize(
                make_objective(spec, settings, x, y, budget),
                n_trials=budget,
                callbacks=callbacks,
                catch=(ValueError, ArithmeticError),
            )
    if logger:
        logger.close()
    return {
        "worker": worker,
        "seconds": round(time.perf_counter() - started, 3),
        "trials_in_study": len(study.get_trials(deepcopy=False)),
        "child_runs_logged": logger.logged if logger else 0,
        "logging_errors": logger.errors if logger else 0,
    }


def finish_search(handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake) -> dict[str, Any]:
    """Refit the best trial on all training data, evaluate on the test split, log everything to the parent run.

    Returns the model URI, model id, run id and metrics. Idempotent: if the parent run already holds a
    model, that model is returned.
    """
    client = _client(settings)
    parent = client.get_run(handle.parent_run_id)
    if MODEL_ID_TAG in parent.data.tags:
        return json.loads(parent.data.tags["mlops.result"])
    study = optuna.load_study(study_name=handle.study_name, storage=_storage(settings))
    completed = [t for t in study.get_trials(deepcopy=False) if t.state is optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(
            f"study {handle.study_name} has no completed trial; see the failed child runs of MLflow run "
            f"{handle.parent_run_id} for the errors"
        )
    best = study.best_trial
    train, test, manifest = load_split(spec, lake, handle.split_manifest)
    x_train, y_train = to_matrix(train, spec), to_target(train, spec)
    x_test, y_test = to_matrix(test, spec), to_target(test, spec)
    model = build_pipeline(spec, estimator_from_params(best.params, settings.seed, probability=True))
    model.fit(x_train, y_train)
    holdout = evaluate.holdout_metrics(model, x_test, y_test)
    folds = fold_scores(best)
    example = test[spec.feature_names].head(3)
    signature = infer_signature(example, model.predict(to_matrix(example, spec)))

    mlflow.set_experiment(experiment_id=handle.experiment_id)  # the fluent API checks the active experiment
    budget = trial_budget(study, settings.n_trials)  # a study attribute: one storage read
    with mlflow.start_run(run_id=handle.parent_run_id):
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.log_metrics(
            {
                "best_cv_score": float(best.value),
                "best_cv_std": float(np.std(folds)),
                "best_trial": best.number,
                "trials_complete": len(completed),
                "trials_pruned": sum(
                    t.number < budget
                    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
                ),
                **{f"test_{k}": v for k, v in holdout.items()},
            }
        )
        mlflow.log_dict(json.loads(spec.to_json()), "dataset_spec.json")
        mlflow.log_dict(manifest, "split_manifest.json")
        for name, figure in {
            "optimisation_history.png": evaluate.optimisation_history_figure(study),
            "param_importances.png": evaluate.param_importances_figure(study, best.params["family"]),
            "confusion_matrix.png": evaluate.confusion_matrix_figure(model, x_test, y_test, spec),
            "roc_curve.png": evaluate.roc_curve_figure(model, x_test, y_test, spec),
        }.items():
            mlflow.log_figure(figure, f"figures/{name}")
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=skops_trusted_types(model),
            pip_requirements=model_requirements(),
            metadata={
                "dataset_spec": json.loads(spec.to_json()),
                "data_version": handle.data_version,
                "schema_hash": spec.fingerprint(),
                "metric": settings.metric,
                "cv_score": float(best.value),
                "test_metrics": holdout,
                "family": best.params["family"],
            },
        )
        result = {
            "model_uri": info.model_uri,
            "model_id": info.model_id,
            "run_id": handle.parent_run_id,
            "data_version": handle.data_version,
            "family": best.params["family"],
            "best_params": best.params,
            "cv_score": float(best.value),
            "test_metrics": holdout,
        }
        mlflow.set_tags({MODEL_ID_TAG: info.model_id, "mlops.result": json.dumps(result)})
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


def _worker_process(args: tuple[dict[str, str], DatasetSpec, MLSettings, str, int, bool]) -> dict[str, Any]:
    handle, spec, settings, bucket, worker, log_trials = args
    return run_worker(SearchHandle(**handle), spec, settings, Lake.from_env(bucket), worker, log_trials)


def run_search(
    spec: DatasetSpec,
    settings: MLSettings,
    lake: Lake,
    workers: int = 1,
    log_trials: bool = True,
    finish: bool = True,
    start_method: str = "spawn",
) -> dict[str, Any]:
    """Prepare, run ``workers`` worker processes on one study, and finish: the whole search in one call.

    ``start_method`` is the multiprocessing start method of the workers ("spawn" is always safe;
    "fork" starts faster on Linux when the caller has no threads running).
    """
    handle = prepare_search(spec, settings, lake)
    started = time.perf_counter()
    if workers == 1:
        reports = [run_worker(handle, spec, settings, lake, 0, log_trials)]
    else:
        jobs = [(handle.to_dict(), spec, settings, lake.bucket, w, log_trials) for w in range(workers)]
        with multiprocessing.get_context(start_method).Pool(workers) as pool:
            reports = pool.map(_worker_process, jobs)
    search_seconds = time.perf_counter() - started
    result = finish_search(handle, spec, settings, lake) if finish else {}
    return {"handle": handle.to_dict(), "workers": reports, "search_seconds": search_seconds, **result}
