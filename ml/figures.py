"""Figures logged with a search: the optimisation history, parameter importances and the test-split figures.

Test-split figures per task (:func:`holdout_figures`): a confusion matrix for any classification (with the
class labels), ROC and precision-recall curves for a binary model only, predicted-vs-actual and residual
plots for a regression. Callers log each figure and then :func:`release` it.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved and logged

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.figure import Figure
from sklearn import metrics

from ml.spec import DatasetSpec
from ml.tasks import TaskType

FIGURE_NAMES: dict[TaskType, tuple[str, ...]] = {
    TaskType.BINARY: ("confusion_matrix", "roc_curve", "precision_recall_curve"),
    TaskType.MULTICLASS: ("confusion_matrix",),
    TaskType.REGRESSION: ("predicted_vs_actual", "residuals"),
}


def holdout_figures(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> dict[str, Figure]:
    """The task's figures on the test split, by file name (``<name>.png``, names in :data:`FIGURE_NAMES`)."""
    if spec.task is TaskType.REGRESSION:
        predicted = np.asarray(model.predict(x), dtype=float)
        return {
            "predicted_vs_actual.png": predicted_vs_actual_figure(y, predicted, spec),
            "residuals.png": residuals_figure(y, predicted, spec),
        }
    figures = {"confusion_matrix.png": confusion_matrix_figure(model, x, y, spec)}
    if spec.task is TaskType.BINARY:
        figures["roc_curve.png"] = roc_curve_figure(model, x, y, spec)
        figures["precision_recall_curve.png"] = precision_recall_figure(model, x, y, spec)
    return figures


def _figure_of(display: Any, title: str) -> Figure:
    display.ax_.set_title(title)
    figure: Figure = display.figure_  # scikit-learn ships no type information
    figure.tight_layout()
    return figure


def confusion_matrix_figure(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> Figure:
    """Confusion matrix on the test split, with the class labels (any number of classes)."""
    labels = list(spec.target.labels)
    display = metrics.ConfusionMatrixDisplay.from_predictions(
        y, model.predict(x), labels=list(range(len(labels))), display_labels=labels, xticks_rotation=30
    )
    return _figure_of(display, "Confusion matrix (test split)")


def roc_curve_figure(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> Figure:
    """ROC curve of the positive class on the test split (binary only)."""
    display = metrics.RocCurveDisplay.from_predictions(
        y, model.predict_proba(x)[:, 1], name=f"P({spec.target.positive_class})"
    )
    return _figure_of(display, "ROC curve (test split)")


def precision_recall_figure(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> Figure:
    """Precision-recall curve of the positive class on the test split (binary only)."""
    display = metrics.PrecisionRecallDisplay.from_predictions(
        y, model.predict_proba(x)[:, 1], name=f"P({spec.target.positive_class})"
    )
    return _figure_of(display, "Precision-recall curve (test split)")


def _target_label(spec: DatasetSpec) -> str:
    name = spec.target.title or spec.target.name
    return f"{name} ({spec.target.unit})" if spec.target.unit else name


def predicted_vs_actual_figure(y: np.ndarray, predicted: np.ndarray, spec: DatasetSpec) -> Figure:
    """Predicted against actual values on the test split, with the identity line (regression)."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.scatter(y, predicted, s=14, alpha=0.6)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="C1", label="perfect prediction")
    axis.set_xlabel(f"actual {_target_label(spec)}")
    axis.set_ylabel(f"predicted {_target_label(spec)}")
    axis.set_title("Predicted vs actual (test split)")
    axis.legend()
    figure.tight_layout()
    return figure


def residuals_figure(y: np.ndarray, predicted: np.ndarray, spec: DatasetSpec) -> Figure:
    """Residuals (actual - predicted) against the prediction on the test split (regression)."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    axis.scatter(predicted, y - predicted, s=14, alpha=0.6)
    axis.axhline(0.0, color="C1")
    axis.set_xlabel(f"predicted {_target_label(spec)}")
    axis.set_ylabel("residual (actual - predicted)")
    axis.set_title("Residuals (test split)")
    figure.tight_layout()
    return figure


def optimisation_history_figure(study: optuna.Study) -> Figure:
    """Objective value of each trial and the best value so far (in the study's direction)."""
    trials = sorted(
        (t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE and t.value is not None),
        key=lambda t: t.number,
    )
    numbers = [t.number for t in trials]
    values = [float(t.value) for t in trials if t.value is not None]
    minimise = study.direction is optuna.study.StudyDirection.MINIMIZE
    best: list[float] = list((np.minimum if minimise else np.maximum).accumulate(values)) if values else []
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.scatter(numbers, values, s=12, alpha=0.6, label="trial")
    axis.plot(numbers, best, color="C1", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"CV {study.user_attrs.get('metric', 'score')} ({'lower' if minimise else 'higher'} is better)")
    axis.set_title("Optimisation history")
    axis.legend()
    figure.tight_layout()
    return figure


def param_importances_figure(study: optuna.Study, family: str) -> Figure:
    """Hyper-parameter importances (fANOVA) within the best model family."""
    figure, axis = plt.subplots(figsize=(7, 4))
    trials = [
        t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE and t.params.get("family") == family
    ]
    importances: dict[str, float] = {}
    if len(trials) >= 3:
        sub = optuna.create_study(direction=study.direction)
        sub.add_trials(trials)
        try:
            importances = optuna.importance.get_param_importances(sub)
        except (RuntimeError, ValueError):  # too few distinct values to estimate importances
            importances = {}
    if importances:
        names = list(importances)[::-1]
        axis.barh(names, [importances[n] for n in names])
        axis.set_xlabel("importance (fANOVA)")
    else:
        axis.text(0.5, 0.5, "not enough trials of this family", ha="center", va="center")
    axis.set_title(f"Hyper-parameter importances ({family}, {len(trials)} trials)")
    figure.tight_layout()
    return figure


def release(figure: Figure) -> None:
    """Close ``figure`` once it is saved or logged: pyplot keeps every open figure (and its memory) otherwise."""
    plt.close(figure)
