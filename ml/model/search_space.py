"""The hyper-parameter search space: four model families per kind of task and their main hyper-parameters.

Classification (binary and multi-class): logistic regression, an RBF SVC, a random forest and histogram
gradient boosting; all handle any number of classes and give probabilities (the SVC through Platt
scaling). Regression: ridge, an RBF SVR (both on a standardised target, so their ranges do not depend on
the target's unit), a random forest and histogram gradient boosting.

:func:`suggest_params` asks an Optuna trial for a family and its parameters (flat, prefixed names such
as ``svc__C`` so they log cleanly to MLflow); :func:`estimator_from_params` turns such a dict back into
an estimator, so the final model is rebuilt from the best trial's parameters alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from ml.tasks import MetricInfo, TaskType


def _logreg(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("logreg__C", 1e-3, 1e2, log=True),
        "class_weight": trial.suggest_categorical("logreg__class_weight", ["none", "balanced"]),
    }


def _svc(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("svc__C", 1e-2, 1e2, log=True),
        "gamma": trial.suggest_float("svc__gamma", 1e-4, 1.0, log=True),
        "class_weight": trial.suggest_categorical("svc__class_weight", ["none", "balanced"]),
    }


def _random_forest(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("random_forest__n_estimators", 10, 100, step=10),
        "max_depth": trial.suggest_int("random_forest__max_depth", 2, 10),
        "min_samples_leaf": trial.suggest_int("random_forest__min_samples_leaf", 1, 8),
        "max_features": trial.suggest_categorical("random_forest__max_features", ["sqrt", "log2"]),
    }


def _hist_gradient_boosting(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("hist_gradient_boosting__learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("hist_gradient_boosting__max_iter", 20, 150, step=10),
        "max_leaf_nodes": trial.suggest_int("hist_gradient_boosting__max_leaf_nodes", 4, 31),
        "l2_regularization": trial.suggest_float("hist_gradient_boosting__l2_regularization", 1e-6, 1.0, log=True),
    }


def _ridge(trial: optuna.Trial) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("ridge__alpha", 1e-3, 1e3, log=True)}


def _svr(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("svr__C", 1e-2, 1e2, log=True),
        "gamma": trial.suggest_float("svr__gamma", 1e-4, 1.0, log=True),
        "epsilon": trial.suggest_float("svr__epsilon", 1e-3, 1.0, log=True),  # in standard deviations of y
    }


def _random_forest_regressor(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("random_forest_regressor__n_estimators", 10, 100, step=10),
        "max_depth": trial.suggest_int("random_forest_regressor__max_depth", 2, 12),
        "min_samples_leaf": trial.suggest_int("random_forest_regressor__min_samples_leaf", 1, 16),
        "max_features": trial.suggest_categorical("random_forest_regressor__max_features", [0.33, 0.66, 1.0]),
    }


def _hist_gradient_boosting_regressor(trial: optuna.Trial) -> dict[str, Any]:
    prefix = "hist_gradient_boosting_regressor__"
    return {
        "learning_rate": trial.suggest_float(f"{prefix}learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int(f"{prefix}max_iter", 20, 150, step=10),
        "max_leaf_nodes": trial.suggest_int(f"{prefix}max_leaf_nodes", 4, 31),
        "min_samples_leaf": trial.suggest_int(f"{prefix}min_samples_leaf", 5, 40),
        "l2_regularization": trial.suggest_float(f"{prefix}l2_regularization", 1e-6, 1.0, log=True),
    }


def _standardised_target(regressor: BaseEstimator) -> TransformedTargetRegressor:
    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def _weights(value: str) -> str | None:
    return None if value == "none" else value


def _maybe_calibrated(svc: SVC, probability: bool) -> BaseEstimator:
    # SVC has no predict_proba of its own (sklearn 1.9 deprecates probability=True): the final model
    # gets Platt scaling through CalibratedClassifierCV, as the deprecation message recommends.
    return CalibratedClassifierCV(svc, method="sigmoid", ensemble=False) if probability else svc


BUILDERS: dict[str, Callable[[dict[str, Any], int, bool], BaseEstimator]] = {
    "logreg": lambda p, seed, _: LogisticRegression(
        C=p["C"], class_weight=_weights(p["class_weight"]), max_iter=5000, random_state=seed
    ),
    "svc": lambda p, seed, proba: _maybe_calibrated(
        SVC(C=p["C"], gamma=p["gamma"], class_weight=_weights(p["class_weight"]), random_state=seed), proba
    ),
    "random_forest": lambda p, seed, _: RandomForestClassifier(**p, n_jobs=1, random_state=seed),
    "hist_gradient_boosting": lambda p, seed, _: HistGradientBoostingClassifier(
        **p, early_stopping=False, random_state=seed
    ),
    "ridge": lambda p, seed, _: _standardised_target(Ridge(alpha=p["alpha"], random_state=seed)),
    "svr": lambda p, seed, _: _standardised_target(SVR(C=p["C"], gamma=p["gamma"], epsilon=p["epsilon"])),
    "random_forest_regressor": lambda p, seed, _: RandomForestRegressor(**p, n_jobs=1, random_state=seed),
    "hist_gradient_boosting_regressor": lambda p, seed, _: HistGradientBoostingRegressor(
        **p, early_stopping=False, random_state=seed
    ),
}
SUGGESTERS: dict[str, Callable[[optuna.Trial], dict[str, Any]]] = {
    "logreg": _logreg,
    "svc": _svc,
    "random_forest": _random_forest,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "ridge": _ridge,
    "svr": _svr,
    "random_forest_regressor": _random_forest_regressor,
    "hist_gradient_boosting_regressor": _hist_gradient_boosting_regressor,
}
CLASSIFIERS = ("logreg", "svc", "random_forest", "hist_gradient_boosting")
REGRESSORS = ("ridge", "svr", "random_forest_regressor", "hist_gradient_boosting_regressor")
FAMILIES = CLASSIFIERS  # the binary (and historic) search space
PROBABILITY_METRICS = frozenset({"log_loss", "roc_auc_ovr"})  # their scorers call predict_proba


def families_for(task: TaskType) -> tuple[str, ...]:
    """The model families searched for a task: the classifiers for binary and multi-class, else the regressors."""
    return CLASSIFIERS if task.is_classification else REGRESSORS


def needs_probability(metric: MetricInfo) -> bool:
    """Whether cross-validating ``metric`` needs ``predict_proba`` (so the SVC must be calibrated in CV too)."""
    return metric.name in PROBABILITY_METRICS


def suggest_params(trial: optuna.Trial, families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    """Sample a model family and its hyper-parameters; returns the flat, prefixed parameter dict."""
    family = trial.suggest_categorical("family", list(families))
    SUGGESTERS[family](trial)
    return dict(trial.params)


def estimator_from_params(params: dict[str, Any], seed: int, probability: bool = True) -> BaseEstimator:
    """Build the estimator that flat, prefixed trial parameters describe.

    ``probability=False`` skips the SVC's probability calibration, which cross-validation does not need
    (scorers use ``predict`` or ``decision_function``) and which costs an internal 5-fold fit.
    """
    family = params["family"]
    if family not in BUILDERS:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(BUILDERS)}")
    prefix = f"{family}__"
    own = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    return BUILDERS[family](own, seed, probability)
