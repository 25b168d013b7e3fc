"""The search's Optuna objective: k-fold cross-validation of one sampled pipeline configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import optuna
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold

from ml.model import estimator_from_params, families_for, suggest_params
from ml.model.pipeline import build_preprocessor
from ml.model.search_space import needs_probability
from ml.search_budget import OVER_BUDGET, admitted
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import ERROR_ATTR, FOLD_SCORES_ATTR, OVER_BUDGET_ATTR

log = logging.getLogger(__name__)

Fold = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # preprocessed x_fit, y_fit, x_valid, y_valid


def _preprocessed_folds(spec: DatasetSpec, settings: MLSettings, x: np.ndarray, y: np.ndarray) -> list[Fold]:
    """The CV folds of ``x, y`` as (x_fit, y_fit, x_valid, y_valid), preprocessed as fitted on the fold's rows.

    Folds are stratified by class for classification and shuffled (seeded) plain k-fold for regression. The
    preprocessing (imputation, scaling, encoding) has no hyper-parameters, so it is fitted once per fold, on
    that fold's training rows only, and reused by every trial: exactly what fitting the whole pipeline per
    trial would compute, minus the repeated work (sklearn's ``Pipeline(memory=...)`` idea, in memory).
    """
    splitter = StratifiedKFold if spec.task.is_classification else KFold
    folds = list(splitter(settings.cv_folds, shuffle=True, random_state=settings.seed).split(x, y))
    prepared: list[Fold] = []
    for train_idx, valid_idx in folds:
        preprocessor = build_preprocessor(spec).fit(x[train_idx], y[train_idx])
        prepared.append(
            (preprocessor.transform(x[train_idx]), y[train_idx], preprocessor.transform(x[valid_idx]), y[valid_idx])
        )
    return prepared


def _record_error(trial: optuna.Trial, error: Exception) -> None:
    """Store why ``trial`` raised in its ``error`` attribute, so it counts as failed rather than interrupted."""
    try:
        trial.set_user_attr(ERROR_ATTR, f"{type(error).__name__}: {error}"[:500])
    except Exception:  # the trial was reclaimed, or the database is gone: it will count as interrupted
        log.debug("could not record the error of trial %d", trial.number, exc_info=True)


def make_objective(
    spec: DatasetSpec, settings: MLSettings, x: np.ndarray, y: np.ndarray, budget: int | None = None
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: k-fold CV of the spec's metric (:attr:`ml.spec.DatasetSpec.metric`) of the full pipeline.

    The value is the metric's own (an RMSE is positive), which the study minimises or maximises by the
    metric's direction. The folds are split and preprocessed once for all trials (:func:`_preprocessed_folds`).
    After the first fold the running score is reported once for pruning; the fold scores are stored with the
    trial. Three storage writes per trial, because with several workers every storage operation is a round
    trip to the database.

    Parallel workers can each start a trial in the instant the budget is reached; a trial that gets no
    slot of ``budget`` (:func:`ml.search_budget.admitted`) stops its worker at once, before sampling
    anything, and ends FAIL, marked ``over_budget`` (it does not count and is not logged). An exception is
    recorded in the trial's ``error`` attribute before it propagates; a ``BaseException`` such as Airflow's
    ``AirflowTaskTerminated`` is not (Optuna leaves that trial RUNNING: the heartbeat check reclaims and
    retries it as interrupted).
    """
    metric, families = spec.metric, families_for(spec.task)
    scorer, probability = get_scorer(metric.scorer), needs_probability(metric)
    prepared = _preprocessed_folds(spec, settings, x, y)

    def objective(trial: optuna.Trial) -> float:
        if budget is not None and not admitted(trial, budget):
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            trial.study.stop()
            log.info("trial %d is %s: this worker stops", trial.number, OVER_BUDGET)
            return float("nan")  # Optuna fails a NaN trial (with one log line; an exception adds a traceback)
        try:
            return evaluate_trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # not BaseException: a terminated task (Airflow's SIGTERM) is interrupted
            _record_error(trial, error)
            raise

    def evaluate_trial(trial: optuna.Trial) -> float:
        params = suggest_params(trial, families)
        estimator = estimator_from_params(params, settings.seed, probability=probability)
        scores: list[float] = []
        for k, (x_fit, y_fit, x_valid, y_valid) in enumerate(prepared):
            scores.append(metric.from_scorer(float(scorer(clone(estimator).fit(x_fit, y_fit), x_valid, y_valid))))
            if k == 0:
                trial.report(scores[0], 0)
                if trial.should_prune():
                    trial.set_user_attr(FOLD_SCORES_ATTR, scores)
                    raise optuna.TrialPruned()
        trial.set_user_attr(FOLD_SCORES_ATTR, scores)
        value = float(np.mean(scores))
        if not np.isfinite(value):  # Optuna would fail the trial without saying why
            raise ArithmeticError(f"the mean CV score is {value}")
        return value

    return objective
