"""Evaluation of a fitted model on a held-out split: the metric the gate compares, and the test metrics per task.

Scores are the metrics' own values (:meth:`ml.tasks.MetricInfo.from_scorer`): an RMSE is positive and
lower is better. Figures are in :mod:`ml.figures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics
from sklearn.metrics import get_scorer

from ml.spec import DatasetSpec
from ml.tasks import MetricInfo, TaskType

TEST_METRICS: dict[TaskType, tuple[str, ...]] = {
    TaskType.BINARY: ("f1", "precision", "recall", "roc_auc", "accuracy"),
    TaskType.MULTICLASS: ("f1_macro", "accuracy", "log_loss", "roc_auc_ovr"),
    TaskType.REGRESSION: ("rmse", "mae", "r2"),
}


def score(model: Any, x: np.ndarray, y: np.ndarray, metric: MetricInfo) -> float:
    """One metric of a fitted model, as the metric's own value (a loss is positive; see ``metric.direction``)."""
    return metric.from_scorer(float(get_scorer(metric.scorer)(model, x, y)))


def holdout_metrics(model: Any, x: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> dict[str, float]:
    """The task's test metrics (:data:`TEST_METRICS`) plus the spec's own metric, on a held-out split.

    Binary: F1, precision, recall, ROC AUC, accuracy (positive class = 1). Multi-class: macro F1, accuracy,
    log loss, one-vs-rest ROC AUC. Regression: RMSE, MAE, R².
    """
    if spec.task is TaskType.BINARY:
        values = _binary(model, x, y)
    elif spec.task is TaskType.MULTICLASS:
        values = _multiclass(model, x, y, len(spec.target.labels))
    else:
        values = _regression(model.predict(x), y)
    if spec.metric.name not in values:
        values[spec.metric.name] = score(model, x, y, spec.metric)
    return values


def _binary(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    predicted = model.predict(x)
    probability = model.predict_proba(x)[:, 1]
    return {
        "f1": float(metrics.f1_score(y, predicted)),
        "precision": float(metrics.precision_score(y, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y, predicted)),
        "roc_auc": float(metrics.roc_auc_score(y, probability)),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
    }


def _multiclass(model: Any, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    predicted = model.predict(x)
    probability = model.predict_proba(x)
    labels = list(range(n_classes))
    return {
        "f1_macro": float(metrics.f1_score(y, predicted, average="macro", labels=labels, zero_division=0)),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "log_loss": float(metrics.log_loss(y, probability, labels=labels)),
        "roc_auc_ovr": float(metrics.roc_auc_score(y, probability, multi_class="ovr", labels=labels)),
    }


def _regression(predicted: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(metrics.root_mean_squared_error(y, predicted)),
        "mae": float(metrics.mean_absolute_error(y, predicted)),
        "r2": float(metrics.r2_score(y, predicted)),
    }
