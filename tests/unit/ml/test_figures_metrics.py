"""Test metrics and figures per task: the right names, values in the metric's own terms, figures closed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from ml import evaluate, figures
from ml.model import build_pipeline, to_matrix, to_target
from ml.readers import read_source
from ml.spec import get_spec


def fitted(name: str):
    spec = get_spec(name)
    frame = read_source(spec)
    if "age" in spec.feature_names:  # diabetes: validated rows hold Int64 ages and a float target
        frame["age"] = frame["age"].astype("Int64")
    estimator = Ridge() if not spec.task.is_classification else LogisticRegression(max_iter=5000)
    x, y = to_matrix(frame, spec), to_target(frame, spec)
    return spec, build_pipeline(spec, estimator).fit(x, y), x, y


@pytest.mark.parametrize(
    ("name", "metrics", "names"),
    [
        ("breast_cancer", {"f1", "precision", "recall", "roc_auc", "accuracy"},
         {"confusion_matrix.png", "roc_curve.png", "precision_recall_curve.png"}),
        ("wine", {"f1_macro", "accuracy", "log_loss", "roc_auc_ovr"}, {"confusion_matrix.png"}),
        ("diabetes", {"rmse", "mae", "r2"}, {"predicted_vs_actual.png", "residuals.png"}),
    ],
)  # fmt: skip
def test_each_task_gets_its_metrics_and_figures(name: str, metrics: set[str], names: set[str]) -> None:
    spec, model, x, y = fitted(name)
    values = evaluate.holdout_metrics(model, x, y, spec)
    assert set(values) == metrics
    assert values[spec.metric.name] == pytest.approx(evaluate.score(model, x, y, spec.metric))
    before = len(plt.get_fignums())
    drawn = figures.holdout_figures(model, x, y, spec)
    assert set(drawn) == names
    for figure in drawn.values():
        figures.release(figure)
    assert len(plt.get_fignums()) == before


def test_a_regression_is_scored_as_a_positive_error() -> None:
    spec, model, x, y = fitted("diabetes")
    values = evaluate.holdout_metrics(model, x, y, spec)
    assert 40 < values["rmse"] < 70 and 0 < values["mae"] < values["rmse"] and 0.3 < values["r2"] < 0.7
    assert np.isclose(values["rmse"], np.sqrt(np.mean((model.predict(x) - y) ** 2)))


def test_the_confusion_matrix_has_every_class_label() -> None:
    spec, model, x, y = fitted("wine")
    figure = figures.confusion_matrix_figure(model, x, y, spec)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    figures.release(figure)
    assert labels == ["barolo", "grignolino", "barbera"]


@pytest.mark.parametrize(
    ("direction", "best"), [("minimize", [3.0, 2.0, 2.0, 1.0]), ("maximize", [3.0, 3.0, 4.0, 4.0])]
)
def test_the_optimisation_history_follows_the_direction(direction: str, best: list[float]) -> None:
    study = optuna.create_study(direction=direction)
    for value in (3.0, 2.0, 4.0, 1.0):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
    figure = figures.optimisation_history_figure(study)
    line = figure.axes[0].get_lines()[0]
    figures.release(figure)
    assert list(line.get_ydata()) == best
