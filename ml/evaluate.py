"""Evaluation of a fitted model on a held-out split: metrics and figures."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved and logged

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.figure import Figure
from sklearn import metrics
from sklearn.metrics import get_scorer

from ml.spec import DatasetSpec

TEST_METRICS = ("f1", "precision", "recall", "roc_auc", "accuracy")


def score(model: Any, x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """One metric of a fitted model (sklearn scorer semantics: higher is better)."""
    return float(get_scorer(metric)(model, x, y))


def holdout_metrics(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """F1, precision, recall, ROC AUC and accuracy on a held-out split (positive class = 1)."""
    predicted = model.predict(x)
    probability = model.predict_proba(x)[:, 1]
    return {
        "f1": float(metrics.f1_score(y, predicted)),
        "precision": float(metrics.precision_score(y, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y, predicted)),
        "roc_auc": float(metrics.roc_auc_score(y, probability)),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
    }


def confusion_matrix_figure(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> Figure:
    """Confusion matrix on the test split, with class labels."""
    labels = [spec.target.negative_class, spec.target.positive_class]
    display = metrics.ConfusionMatrixDisplay.from_predictions(y, model.predict(x), display_labels=labels)
    display.ax_.set_title("Confusion matrix (test split)")
    figure: Figure = display.figure_  # scikit-learn ships no type information
    return figure


def roc_curve_figure(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> Figure:
    """ROC curve on the test split."""
    display = metrics.RocCurveDisplay.from_predictions(
        y, model.predict_proba(x)[:, 1], name=f"P({spec.target.positive_class})"
    )
    display.ax_.set_title("ROC curve (test split)")
    figure: Figure = display.figure_  # scikit-learn ships no type information
    return figure


def optimisation_history_figure(study: optuna.Study) -> Figure:
    """Objective value of each trial and the best value so far."""
    trials = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    trials.sort(key=lambda t: t.number)
    figure, axis = plt.subplots(figsize=(7, 4))
    numbers: list[int] = []
    values: list[float] = []
    for t in trials:
        if t.value is not None:  # always set on a complete trial of a single-objective study
            numbers.append(t.number)
            values.append(t.value)
    axis.scatter(numbers, values, s=12, alpha=0.6, label="trial")
    axis.plot(numbers, np.maximum.accumulate(values) if values else [], color="C1", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"CV {study.user_attrs.get('metric', 'score')}")
    axis.set_title("Optimisation history")
    axis.legend()
    figure.tight_layout()
    return figure


def param_importances_figure(study: optuna.Study, family: str) -> Figure:
    """Hyper-parameter importances (fANOVA) within the best model family, plus the family choice itself."""
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
