"""Where the search's Optuna study lives and how a worker opens it.

The study is kept in Optuna's RDB storage (Postgres in the stack, SQLite in unit tests) with trial
heartbeats: every running trial writes one every ``trial_heartbeat_s``, and a RUNNING trial whose
heartbeat is older than ``trial_grace_s`` belongs to a dead process, so it is failed (interrupted) and its
configuration queued again, up to ``trial_max_retries`` times. :func:`load_study` opens the study with the
sampler and pruner every worker uses.
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.orm
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models as rdb_models
from optuna.trial import FrozenTrial, TrialState

from ml.contracts import SearchHandle
from ml.settings import MLSettings
from ml.tracking import OVER_BUDGET_ATTR

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)


class _RetryInterrupted(RetryHeartbeatStaleTrialCallback):
    """Queue an interrupted trial's configuration again, without the attributes of its partial run."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Heartbeat-stale callback: enqueue the retry (not for a trial stopped before sampling)."""
        if trial.user_attrs.get(OVER_BUDGET_ATTR):
            return
        trial.user_attrs = {}  # a copy (fail_stale_trials deep-copies); fold scores etc. belong to the dead run
        super().__call__(study, trial)


class _HeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage with trial heartbeats that survive database blips and reclaim every dead trial.

    Optuna's heartbeat thread dies at the first database error, after which a trial that is still alive
    would be taken for a dead one: here a failed heartbeat is logged and the next one tried. Optuna also
    never fails a RUNNING trial that has no heartbeat row at all (its process died between starting the
    trial and the first heartbeat, e.g. because the database went away); here such a trial is stale once
    it started more than the grace period ago (by the workers' clocks).
    """

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a heartbeat; a database error is logged, not raised (the thread would stop beating)."""
        try:
            super().record_heartbeat(trial_id)
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("could not record the heartbeat of trial id %d: %s", trial_id, error)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        trials, beats = rdb_models.TrialModel.__table__, rdb_models.TrialHeartbeatModel.__table__
        with sqlalchemy.orm.Session(self.engine) as session:
            # Heartbeats carry the database's clock (as in Optuna), start times the worker's (naive UTC).
            db_now = session.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one().replace(tzinfo=None)
            rows = session.execute(
                sqlalchemy.select(trials.c.trial_id, trials.c.datetime_start, beats.c.heartbeat)
                .select_from(trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
                .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING)
            ).all()
        grace = timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 1))
        now = datetime.now(UTC).replace(tzinfo=None)
        return [
            trial_id
            for trial_id, started, heartbeat in rows
            if (db_now - heartbeat > grace if heartbeat is not None else started is not None and now - started > grace)
        ]


def study_storage(settings: MLSettings) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with trial heartbeats; SQLite files get write-ahead logging for concurrent workers."""
    # pool_pre_ping survives a database restart between tasks; one connection per worker is plenty.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat API is experimental since 2.9
        storage = _HeartbeatStorage(
            settings.optuna_storage,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=settings.trial_heartbeat_s,
            grace_period=settings.trial_grace_s,
            heartbeat_stale_trial_callback=_RetryInterrupted(max_retry=settings.trial_max_retries),
        )
    if storage.engine.dialect.name == "sqlite":
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
        storage.engine.dispose()  # connections opened so far predate the listener
    return storage


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """SQLAlchemy ``connect`` listener: put a new SQLite connection in WAL mode with NORMAL sync."""
    # WAL lets readers and one writer work at once across processes; NORMAL sync is durable in WAL mode
    # except for the last commits on power loss, and saves an fsync per trial update.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def redacted_url(url: str) -> str:
    """``url`` without its user information (``scheme://user:password@host`` becomes ``scheme://host``)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@', 1)[1]}" if "@" in rest else url


def load_study(handle: SearchHandle, settings: MLSettings, seed_offset: int) -> optuna.Study:
    """Open the search's study with the workers' sampler (seeded ``seed + seed_offset``) and pruner."""
    return optuna.load_study(
        study_name=handle.study_name,
        storage=study_storage(settings),
        # Multivariate TPE with groups models the conditional space (each family's own parameters).
        # constant_liar is off: with it, every suggestion re-reads the study from the database (Optuna
        # disables its per-trial cache), which costs more than the rare duplicate a few workers propose.
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed + seed_offset, multivariate=True, group=True, constant_liar=False
        ),
        # Prune after the first fold when it is below the median first fold of earlier trials: bad
        # configurations of the slow families (forests, boosting) then cost one fit instead of k.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
    )
