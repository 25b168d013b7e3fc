"""Task types and their metrics: what "better" means for a binary, a multi-class and a regression model.

A dataset spec declares its ``task``; everything that compares scores (Optuna's direction, the registry
gate's threshold and margin, the API's description of a model) asks this module, never a hard-coded
"higher is better". Pure Python: the API and the Lambda import it without scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class TaskType(StrEnum):
    """What a model predicts."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        """Binary and multi-class models predict a class label with probabilities."""
        return self is not TaskType.REGRESSION

    @property
    def model_suffix(self) -> str:
        """Suffix of the registered model's default name: ``<dataset>_classifier`` or ``<dataset>_regressor``."""
        return "regressor" if self is TaskType.REGRESSION else "classifier"


@dataclass(frozen=True)
class MetricInfo:
    """One cross-validation metric: its name in specs and tags, its direction and scikit-learn's scorer."""

    name: str
    title: str
    greater_is_better: bool
    scorer: str  # a scikit-learn scoring name (negated for losses, so sklearn always maximises it)

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """Optuna's direction for this metric: ``maximize`` or ``minimize``."""
        return "maximize" if self.greater_is_better else "minimize"

    def better(self, candidate: float, incumbent: float, margin: float = 0.0) -> bool:
        """Whether ``candidate`` beats ``incumbent`` by at least ``margin`` in this metric's direction."""
        if self.greater_is_better:
            return candidate >= incumbent + margin
        return candidate <= incumbent - margin

    def meets(self, score: float, threshold: float | None) -> bool:
        """Whether ``score`` is at least as good as ``threshold`` (always true without a threshold)."""
        if threshold is None:
            return True
        return score >= threshold if self.greater_is_better else score <= threshold

    def from_scorer(self, value: float) -> float:
        """Turn a scikit-learn scorer's value (negated for losses) back into the metric's own value."""
        return value if self.greater_is_better else -value


def _m(name: str, title: str, scorer: str, greater_is_better: bool = True) -> MetricInfo:
    return MetricInfo(name=name, title=title, greater_is_better=greater_is_better, scorer=scorer)


# Allowed metrics per task; the first one is the task's default.
TASK_METRICS: dict[TaskType, tuple[MetricInfo, ...]] = {
    TaskType.BINARY: (
        _m("f1", "F1 of the positive class", "f1"),
        _m("roc_auc", "ROC AUC", "roc_auc"),
        _m("accuracy", "accuracy", "accuracy"),
        _m("precision", "precision of the positive class", "precision"),
        _m("recall", "recall of the positive class", "recall"),
        _m("average_precision", "average precision", "average_precision"),
        _m("balanced_accuracy", "balanced accuracy", "balanced_accuracy"),
    ),
    TaskType.MULTICLASS: (
        _m("f1_macro", "macro-averaged F1", "f1_macro"),
        _m("log_loss", "log loss", "neg_log_loss", greater_is_better=False),
        _m("roc_auc_ovr", "one-vs-rest ROC AUC", "roc_auc_ovr"),
        _m("accuracy", "accuracy", "accuracy"),
        _m("balanced_accuracy", "balanced accuracy", "balanced_accuracy"),
    ),
    TaskType.REGRESSION: (
        _m("rmse", "root mean squared error", "neg_root_mean_squared_error", greater_is_better=False),
        _m("mae", "mean absolute error", "neg_mean_absolute_error", greater_is_better=False),
        _m("r2", "coefficient of determination R²", "r2"),
    ),
}

# The first-model threshold per task when the spec gives none (None: no absolute floor; a regression's
# error is in the target's unit, so only the spec's author can say what is good enough).
DEFAULT_MIN_SCORE: dict[TaskType, float | None] = {
    TaskType.BINARY: 0.8,
    TaskType.MULTICLASS: 0.8,
    TaskType.REGRESSION: None,
}
DEFAULT_MARGIN = 0.005


def metrics_for(task: TaskType) -> dict[str, MetricInfo]:
    """The metrics a task allows, by name (default first)."""
    return {m.name: m for m in TASK_METRICS[task]}


def default_metric(task: TaskType) -> MetricInfo:
    """The task's default cross-validation metric."""
    return TASK_METRICS[task][0]


def metric_info(task: TaskType, name: str) -> MetricInfo:
    """Look up a metric allowed for ``task``; the error lists the allowed ones."""
    allowed = metrics_for(task)
    if name not in allowed:
        raise ValueError(f"metric {name!r} is not available for a {task.value} task; use one of {', '.join(allowed)}")
    return allowed[name]
