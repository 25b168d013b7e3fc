"""The search's trial budget: which trials count, who gets the last slots, and running trials until it is full.

A finished search holds exactly ``n_trials`` COMPLETE or PRUNED trials (those that count,
:func:`ml.tracking.counts_toward_budget`) and exactly one MLflow child run per such trial. All other
trials are FAIL and have no child run: trials that raised (reason in their ``error`` attribute), trials
whose process died (interrupted) and trials a racing worker started when the budget was already full
(``over_budget``, stopped before sampling); other trials run in their place. :class:`TrialTally` counts
them; :func:`complete_budget` runs trials (and waits for other workers' trials) until the budget is full.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from ml.settings import MLSettings
from ml.tracking import ERROR_ATTR, OVER_BUDGET_ATTR, counts_toward_budget, retry_of

log = logging.getLogger(__name__)

BUDGET_ATTR = "n_trials"  # study user attribute: the search's trial budget
OVER_BUDGET = "over the search's trial budget"
CAUGHT = (ValueError, ArithmeticError)  # a configuration that raises these fails; the search goes on
POLL_S = 1.0  # how often a worker with nothing to run checks the trials other workers hold


def trial_budget(study: optuna.Study, default: int) -> int:
    """The search's trial budget, as :func:`ml.search.prepare_search` recorded it in the study."""
    return int(study.user_attrs.get(BUDGET_ATTR, default))


@dataclass(frozen=True)
class TrialTally:
    """Where the trials of a study stand against the budget (see the module docstring)."""

    complete: int = 0
    pruned: int = 0  # by the pruner (stops over the budget excluded)
    running: int = 0
    waiting: int = 0  # queued retries of interrupted trials
    failed: int = 0  # the objective raised
    interrupted: int = 0  # the process died (failed by the heartbeat check)
    retried: int = 0  # counted trials that re-ran an interrupted trial's configuration

    @property
    def counted(self) -> int:
        """Trials that count toward the budget."""
        return self.complete + self.pruned

    @property
    def holding(self) -> int:
        """Trials that count, run or wait to run: the budget's slots taken."""
        return self.counted + self.running + self.waiting

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial]) -> TrialTally:
        """Tally ``trials``."""
        counts = dict.fromkeys(cls.__dataclass_fields__, 0)
        for trial in trials:
            if counts_toward_budget(trial):
                counts["complete" if trial.state is TrialState.COMPLETE else "pruned"] += 1
                counts["retried"] += retry_of(trial) is not None
            elif trial.state is TrialState.FAIL and not trial.user_attrs.get(OVER_BUDGET_ATTR):
                counts["failed" if ERROR_ATTR in trial.user_attrs else "interrupted"] += 1
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                counts[trial.state.name.lower()] += 1
        return cls(**counts)


def _holds_slot(trial: FrozenTrial) -> bool:
    """Whether ``trial`` takes one of the budget's slots: it counts, runs or waits to run."""
    return trial.state in (TrialState.RUNNING, TrialState.WAITING) or counts_toward_budget(trial)


def admitted(trial: optuna.Trial, budget: int) -> bool:
    """Whether a trial that just started gets one of the budget's slots.

    Trial numbers are unique and ordered, so each trial looks only at the trials numbered before it that
    count, run or wait: parallel workers agree on who gets the last slots without any lock. A trial
    numbered below the budget always gets one (no read); later ones (after failures, retries or stops)
    read the study once.
    """
    if trial.number < budget:
        return True
    trials = trial.study.get_trials(deepcopy=False)
    return sum(t.number < trial.number and _holds_slot(t) for t in trials) < budget


def _fail_stale_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose heartbeat is stale, queueing their retries (Optuna's experimental API)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class _StopAtBudget:
    """Optuna callback: stop this worker once every slot of the budget is taken or too many trials failed."""

    def __init__(self, budget: int, max_failed: int) -> None:
        self.budget = budget
        self.max_failed = max_failed

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Stop the study's optimisation loop in this process when there is nothing left for it."""
        tally = TrialTally.of(study.get_trials(deepcopy=False))
        if tally.holding >= self.budget or tally.failed + tally.interrupted > self.max_failed:
            study.stop()


def complete_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    budget: int,
    settings: MLSettings,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> TrialTally:
    """Run trials until ``budget`` of them count; returns the final tally.

    Before each trial (Optuna does this) and on every poll, trials of dead processes are failed and their
    configurations queued again. When the remaining slots are held by other workers' running trials,
    this waits (polling every :data:`POLL_S`) until those finish or go stale. Raises once more than
    ``settings.max_failed_trials`` (default: the budget) trials failed or were interrupted. A trial of
    this process that another one took for dead (no heartbeat for the grace period) is dropped: its
    retry counts instead.
    """
    max_failed = budget if settings.max_failed_trials is None else settings.max_failed_trials
    stop = _StopAtBudget(budget, max_failed)
    current: list[int] = []  # number of the trial this process runs (to recognise one reclaimed under it)

    def tracked(trial: optuna.Trial) -> float:
        current[:] = [trial.number]
        return objective(trial)

    while True:
        _fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        tally = TrialTally.of(trials)
        if tally.failed + tally.interrupted > max_failed:
            errors = {t.user_attrs[ERROR_ATTR] for t in trials if ERROR_ATTR in t.user_attrs}
            raise RuntimeError(
                f"study {study.study_name}: {tally.failed} trials failed and {tally.interrupted} were "
                f"interrupted (limit {max_failed}); errors: {sorted(errors)[:5]}"
            )
        if tally.counted >= budget:
            return tally
        if tally.waiting or tally.holding < budget:
            try:
                study.optimize(tracked, n_trials=budget + max_failed, callbacks=[*callbacks, stop], catch=CAUGHT)
            except ValueError:  # Optuna refuses to tell a trial that another process already failed
                mine = [t for t in study.get_trials(deepcopy=False) if current and t.number == current[0]]
                if not mine or mine[0].state is not TrialState.FAIL or ERROR_ATTR in mine[0].user_attrs:
                    raise
                log.warning("trial %d was taken for dead (no heartbeat in time); its retry counts", current[0])
        else:
            time.sleep(POLL_S)
