"""The model store: holds the served bundle, notices a new champion and swaps it in atomically.

One store per served model (tracking URI, name, alias) lives at module level (:func:`get_shared_store`),
so the FastAPI lifespan and the Lambda handler's cold start share it: the model is loaded once per
process even though Mangum runs the lifespan on every Lambda invocation.

How a new champion is noticed:

* in a long-running process, a background thread checks the alias every ``poll_interval_s`` (one REST
  call; files are downloaded only when the version changed) and retries every ``retry_interval_s``
  while no model is loaded;
* on Lambda, where nothing runs between invocations, :meth:`ModelStore.ensure_fresh` does the same check
  at the start of an invocation when the last one is older than the interval;
* ``POST /model/reload`` checks at once.

The swap is one reference assignment. If MLflow or S3 cannot be reached, or the new version is not
servable, the current bundle stays and :attr:`ModelStore.status` says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from api.bundle import ModelBundle, build_bundle
from api.model_loader import MLMODEL, ModelFormatError
from api.registry_client import MlflowRegistry, ModelNotFoundError, ModelRef, RegistryError, RegistryUnavailableError
from api.settings import ApiSettings

log = logging.getLogger(__name__)

Outcome = Literal["loaded", "unchanged", "failed"]


class ModelSource(Protocol):
    """Where models come from: resolve the alias to a version, download a file of a version."""

    @property
    def description(self) -> str:
        """Human-readable origin, e.g. ``models:/m@champion on http://mlflow:5001``."""
        ...

    def resolve(self) -> ModelRef:
        """The version that holds the alias now."""
        ...

    def fetch(self, ref: ModelRef, filename: str) -> bytes:
        """One file of that version's model directory."""
        ...


@dataclass(frozen=True)
class RegistryStatus:
    """What the store knows about its source: reachable or not, since when, and the last problem."""

    source: str
    reachable: bool | None = None
    last_check: float | None = None
    last_success: float | None = None
    unreachable_since: float | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (times as ISO 8601 UTC)."""
        return {
            "source": self.source,
            "reachable": self.reachable,
            "last_check": _iso(self.last_check),
            "last_success": _iso(self.last_success),
            "unreachable_since": _iso(self.unreachable_since),
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class RefreshResult:
    """Outcome of one check of the alias."""

    outcome: Outcome
    detail: str
    bundle: ModelBundle | None
    previous: ModelBundle | None = None
    error: RegistryError | ModelFormatError | None = None


class _NoSource:
    """Stand-in when the service is not configured (no MLflow URL): every check explains what to set."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def description(self) -> str:
        return f"nothing ({self.reason})"

    def resolve(self) -> ModelRef:
        raise ModelNotFoundError(self.reason)

    def fetch(self, ref: ModelRef, filename: str) -> bytes:
        raise ModelNotFoundError(self.reason)


def registry_source(settings: ApiSettings) -> ModelSource:
    """The MLflow registry named by the settings, or a source that explains what is missing."""
    try:
        return MlflowRegistry(settings)
    except RegistryError as exc:
        return _NoSource(str(exc))


class ModelStore:
    """The current :class:`ModelBundle` of one served model, and how it gets replaced."""

    def __init__(self, settings: ApiSettings, source: ModelSource | None = None) -> None:
        self.settings = settings
        self.source: ModelSource = source if source is not None else registry_source(settings)
        self._bundle: ModelBundle | None = None
        self._status = RegistryStatus(source=self.source.description)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[RefreshResult], None]] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._last_attempt = 0.0

    # ------------------------------------------------------------------------------------------- reading
    @property
    def bundle(self) -> ModelBundle | None:
        """The bundle being served, or None. Read it once per request."""
        return self._bundle

    @property
    def status(self) -> RegistryStatus:
        """The registry's state as of the last check."""
        return self._status

    def add_listener(self, callback: Callable[[RefreshResult], None]) -> None:
        """Call ``callback(result)`` after every check (metrics, logs); it must be quick and not raise."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------------------------------- checking
    def refresh(self, force: bool = False) -> RefreshResult:
        """Check the alias now; load and swap in its version if it differs from the served one (or ``force``)."""
        with self._lock:
            result = self._refresh_locked(force)
        for callback in self._listeners:
            try:
                callback(result)
            except Exception:
                log.exception("model store listener failed")
        return result

    def _refresh_locked(self, force: bool) -> RefreshResult:
        now = time.time()
        self._last_attempt = time.monotonic()
        current = self._bundle
        try:
            ref = self.source.resolve()
            if not force and current is not None and ref.same_version(current.ref):
                self._mark(now, reachable=True)
                return RefreshResult("unchanged", f"{ref.uri} is still version {ref.version}", current)
            mlmodel = self.source.fetch(ref, MLMODEL)
            bundle = build_bundle(
                ref, mlmodel, lambda name: self.source.fetch(ref, name), self.settings.fast_preprocessing
            )
        except RegistryUnavailableError as exc:
            self._mark(now, reachable=False, error=str(exc))
            log.warning("model check failed, %s: %s", _keeping(current), exc)
            return RefreshResult("failed", str(exc), current, error=exc)
        except (RegistryError, ModelFormatError) as exc:  # the registry answered, but nothing servable
            self._mark(now, reachable=True, error=str(exc))
            log.warning("model check found nothing servable, %s: %s", _keeping(current), exc)
            return RefreshResult("failed", str(exc), current, error=exc)
        except Exception as exc:  # a model that breaks the loader in an unforeseen way must not stop the service
            log.exception("model check failed unexpectedly, %s", _keeping(current))
            refused = ModelFormatError(f"the model could not be loaded: {type(exc).__name__}: {exc}")
            self._mark(now, reachable=True, error=str(refused))
            return RefreshResult("failed", str(refused), current, error=refused)
        self._bundle = bundle  # the atomic swap
        self._mark(now, reachable=True)
        previous = f" (was version {current.ref.version})" if current is not None else ""
        detail = f"loaded {ref.uri} version {ref.version}{previous} in {bundle.load_seconds:.2f} s"
        log.info(detail)
        return RefreshResult("loaded", detail, bundle, previous=current)

    def _mark(self, now: float, reachable: bool, error: str | None = None) -> None:
        old = self._status
        self._status = replace(
            old,
            reachable=reachable,
            last_check=now,
            last_success=now if reachable else old.last_success,
            unreachable_since=None if reachable else (old.unreachable_since or now),
            last_error=error,
        )

    def ensure_loaded(self) -> ModelBundle | None:
        """Load a model if none is loaded and the last attempt is older than ``retry_interval_s``."""
        if self._bundle is None and self._due(self.settings.retry_interval_s):
            self.refresh()
        return self._bundle

    def ensure_fresh(self) -> ModelBundle | None:
        """:meth:`ensure_loaded`, then check the alias if the last check is older than ``poll_interval_s``.

        For environments without background threads (Lambda): call it at the start of each invocation.
        """
        if self._bundle is None:
            return self.ensure_loaded()
        interval = self.settings.poll_interval_s
        if interval > 0 and self._due(interval):
            self.refresh()
        return self._bundle

    def _due(self, interval: float) -> bool:
        return self._last_attempt == 0.0 or time.monotonic() - self._last_attempt >= interval

    # ------------------------------------------------------------------------------------------- polling
    def start_polling(self) -> None:
        """Start the background check thread (idempotent; does nothing when ``poll_interval_s`` is 0)."""
        if self.settings.poll_interval_s <= 0 or (self._poller is not None and self._poller.is_alive()):
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="model-store-poller", daemon=True)
        self._poller.start()

    def stop_polling(self, timeout: float = 5.0) -> None:
        """Stop the background thread (waits for a check in progress up to ``timeout``)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            self._poller = None

    def _poll(self) -> None:
        while True:
            wait = self.settings.retry_interval_s if self._bundle is None else self.settings.poll_interval_s
            if self._stop.wait(max(wait, 0.05)):
                return
            try:
                self.refresh()
            except Exception:  # never let the poller die: the next round tries again
                log.exception("unexpected error while checking for a new model")


def _keeping(bundle: ModelBundle | None) -> str:
    return f"keeping version {bundle.ref.version}" if bundle is not None else "no model loaded"


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


_SHARED: dict[tuple[str | None, str, str], ModelStore] = {}
_SHARED_LOCK = threading.Lock()


def get_shared_store(settings: ApiSettings) -> ModelStore:
    """The process-wide store for the model the settings name (created on first use, never loaded here)."""
    key = settings.cache_key()
    with _SHARED_LOCK:
        store = _SHARED.get(key)
        if store is None:
            store = _SHARED[key] = ModelStore(settings)
        return store
