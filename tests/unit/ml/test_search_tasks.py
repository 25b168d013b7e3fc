"""The search end to end per task type on a tiny budget: direction, metric values, child runs, figures, metadata."""

from __future__ import annotations

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from ml.etl import extract, split, validate
from ml.lake import Lake
from ml.model.search_space import families_for
from ml.search import run_search
from ml.settings import MLSettings
from ml.spec import get_spec
from ml.tracking import child_runs
from tests.unit.ml.conftest import isolated


@pytest.mark.parametrize(
    ("name", "direction", "test_metrics", "task_figures"),
    [
        ("wine", "maximize", {"f1_macro", "accuracy", "log_loss", "roc_auc_ovr"}, {"confusion_matrix"}),
        ("diabetes", "minimize", {"rmse", "mae", "r2"}, {"predicted_vs_actual", "residuals"}),
    ],
)
def test_search_per_task(
    lake: Lake, ml_env: MLSettings, name: str, direction: str, test_metrics: set[str], task_figures: set[str]
) -> None:
    spec = isolated(get_spec(name))
    settings = ml_env.model_copy(update={"n_trials": 4})
    extract(spec, lake)
    split(spec, lake, settings.seed, settings.test_size, validate(spec, lake, settings.max_invalid_fraction))
    run = run_search(spec, settings, lake)
    result = run.result
    assert result is not None and result.family in families_for(spec.task)
    study = optuna.load_study(study_name=run.handle.study_name, storage=settings.optuna_storage)
    assert study.direction.name.lower() == direction
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    assert client.get_experiment(parent.info.experiment_id).name == name
    assert (parent.data.params["metric"], parent.data.params["direction"]) == (spec.metric.name, direction)
    assert parent.data.params["task"] == spec.task.value
    children = child_runs(client, result.run_id)
    assert len(children) == settings.n_trials
    assert {c.data.params["family"] for c in children} <= set(families_for(spec.task))
    values = [t.value for t in study.trials if t.value is not None]
    best = min(values) if direction == "minimize" else max(values)
    assert result.cv_score == pytest.approx(best) == pytest.approx(parent.data.metrics["best_cv_score"])
    if name == "diabetes":
        assert 40 < result.cv_score < 90  # an RMSE in the target's points, positive
    else:
        assert 0.8 < result.cv_score <= 1.0
    assert set(result.test_metrics) == test_metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "figures")}
    assert artifacts == {f"figures/{n}.png" for n in {"optimisation_history", "param_importances", *task_figures}}
    info = mlflow.models.get_model_info(result.model_uri)
    assert (info.metadata["task"], info.metadata["metric"]) == (spec.task.value, spec.metric.name)
    model = mlflow.sklearn.load_model(result.model_uri)
    assert hasattr(model, "predict_proba") == spec.task.is_classification
