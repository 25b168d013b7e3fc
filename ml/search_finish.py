"""The last phase of a search: complete its budget, refit the best configuration, log the model.

:func:`finish_search` refits the best trial's configuration on the whole training split, evaluates it on
the test split, and logs parameters, metrics, figures and the model (signature, input example, dataset
spec and data version) to the search's MLflow parent run. The model is saved with skops
(:func:`skops_trusted_types`) and pinned to what loading it needs (:func:`model_requirements`).
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import skops.io
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial
from threadpoolctl import threadpool_limits

from ml import evaluate, figures
from ml.contracts import ModelMetadata, SearchHandle, SearchOutcomeTags, SearchResult, SplitManifest
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import build_pipeline, estimator_from_params, to_matrix, to_target
from ml.search_budget import TrialTally, complete_budget, trial_budget
from ml.search_objective import make_objective
from ml.search_study import load_study
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import ChildRunLogger, counts_toward_budget, fold_scores, log_missing_child_runs, tracking_client

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
SAFE_TYPE_PREFIXES = ("numpy.", "sklearn.", "scipy.")


def finish_search(handle: SearchHandle, spec: DatasetSpec, settings: MLSettings, lake: Lake) -> SearchResult:
    """Complete the budget, refit the best trial on all training data, evaluate it, log everything to the parent run.

    The budget is complete before anything else happens (:func:`ml.search_budget.complete_budget`): this
    waits for trials that live workers still run, reclaims those of dead workers (heartbeat) and runs any
    missing trial itself (child runs tagged ``worker=finish``), so the search always ends with exactly its
    budget of counted trials. Counted trials whose child run a killed worker never logged are logged here.

    Returns the model URI, model id, run id and metrics. Idempotent: if the parent run already holds a
    model, that model is returned.
    """
    client = tracking_client(settings)
    parent = client.get_run(handle.parent_run_id)
    if SearchOutcomeTags.tag_key("model_id") in parent.data.tags:  # a retried task: the model is logged
        return SearchOutcomeTags.from_tags(parent.data.tags).result
    study = load_study(handle, settings, settings.tuning_workers)  # its own seed, after the workers'
    budget = trial_budget(study, settings.n_trials)  # a study attribute: one storage read
    train, test, manifest = load_split(spec, lake, handle.split_manifest)
    x_train, y_train = to_matrix(train, spec), to_target(train, spec)
    x_test, y_test = to_matrix(test, spec), to_target(test, spec)
    tally = _complete_counted_trials(study, budget, handle, spec, settings, client, x_train, y_train)
    best, cv_score = _best_trial(study, tally, handle)
    model = build_pipeline(spec, estimator_from_params(best.params, settings.seed, probability=True))
    model.fit(x_train, y_train)
    holdout = evaluate.holdout_metrics(model, x_test, y_test, spec)
    example = test[spec.feature_names].head(3)
    signature = infer_signature(example, model.predict(to_matrix(example, spec)))

    mlflow.set_experiment(experiment_id=handle.experiment_id)  # the fluent API checks the active experiment
    with mlflow.start_run(run_id=handle.parent_run_id):
        _log_scores(best, cv_score, tally, holdout)
        _log_artifacts(spec, manifest, study, best, model, x_test, y_test)
        info = _log_model(handle, spec, model, example, signature, best, cv_score, holdout)
        result = SearchResult(
            model_uri=info.model_uri,
            model_id=info.model_id,
            run_id=handle.parent_run_id,
            data_version=handle.data_version,
            family=best.params["family"],
            best_params=best.params,
            cv_score=cv_score,
            test_metrics=holdout,
        )
        mlflow.set_tags(SearchOutcomeTags(model_id=info.model_id, result=result).to_tags())
    return result


def _complete_counted_trials(
    study: optuna.Study,
    budget: int,
    handle: SearchHandle,
    spec: DatasetSpec,
    settings: MLSettings,
    client: MlflowClient,
    x_train: np.ndarray,
    y_train: np.ndarray,
) -> TrialTally:
    """Bring the study to exactly ``budget`` counted trials, each with its child run; returns the tally.

    Runs what no worker is left to run (child runs tagged ``worker=finish``) and logs the child runs a
    killed worker never logged. Raises when the counted trials are not the budget (an accounting bug).
    """
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
    return tally


def _best_trial(study: optuna.Study, tally: TrialTally, handle: SearchHandle) -> tuple[FrozenTrial, float]:
    """The study's best trial and its CV score; raises when every counted trial was pruned."""
    if not tally.complete:
        raise RuntimeError(
            f"study {handle.study_name} has no completed trial (all {tally.pruned} were pruned); "
            f"see the child runs of MLflow run {handle.parent_run_id}"
        )
    best = study.best_trial
    best_value = best.value
    if best_value is None:  # a complete trial of a single-objective study always has a value
        raise RuntimeError(f"study {handle.study_name}: the best trial {best.number} has no value")
    return best, float(best_value)


def _log_scores(best: FrozenTrial, cv_score: float, tally: TrialTally, holdout: dict[str, float]) -> None:
    """Log the best parameters, its CV and test scores and how the search's trials ended to the active run."""
    mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
    mlflow.log_metrics(
        {
            "best_cv_score": cv_score,
            "best_cv_std": float(np.std(fold_scores(best))),
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


def _log_artifacts(
    spec: DatasetSpec,
    manifest: SplitManifest,
    study: optuna.Study,
    best: FrozenTrial,
    model: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> None:
    """Log the dataset spec, the split manifest and the search's and the model's figures to the active run."""
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


def _log_model(
    handle: SearchHandle,
    spec: DatasetSpec,
    model: Any,
    example: pd.DataFrame,
    signature: ModelSignature,
    best: FrozenTrial,
    cv_score: float,
    holdout: dict[str, float],
) -> ModelInfo:
    """Log the refitted model (skops, exact requirements, :class:`ml.contracts.ModelMetadata`) to the active run."""
    info: ModelInfo = mlflow.sklearn.log_model(
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
            cv_score=cv_score,
            test_metrics=holdout,
            family=best.params["family"],
        ).model_dump(mode="json"),
    )
    return info


def model_requirements() -> list[str]:
    """Exact pins of what loading the model needs (not the whole project, which MLflow would guess)."""
    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "scipy", "mlflow-skinny")]


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
