"""The model store: holds the served bundle, notices a new champion and swaps it in atomically.

One store per served model (tracking URI, name, alias) lives at module level (:func:`get_shared_store`),
so the FastAPI lifespan and the Lambda handler's cold start share it: the model is loaded once per
process even though Mangum runs the lifespan on every Lambda invocation.

Serving never waits on MLflow:

* **start** (:meth:`ModelStore.start`: the process's lifespan, a Lambda environment's init) serves the last
  champion from the champion cache (:mod:`api.champion_cache`: the local copy, else S3) while an alias
  check runs in a background thread. The cached copy is not served if the registry has already named
  another version; without a usable copy, start waits for that check (bounded by its timeouts), which
  loads from the registry or, if the registry cannot be reached, from S3;
* **checks** (one REST call; files are downloaded only when the version changed) run off the request path:
  in a long-running process a background thread checks every ``poll_interval_s`` (``retry_interval_s``
  while no model is loaded); on Lambda, where nothing runs between invocations, :meth:`ModelStore.schedule_check`
  starts a background check at most once per interval and returns at once: the invocation that starts it
  does not wait, a later one serves its result. ``POST /model/reload`` checks at once (and waits: it is the
  admin's explicit request);
* every request to MLflow has a connect/read timeout of ``check_timeout_s`` (file downloads:
  ``registry_timeout_s``), so a stopped MLflow holds a check, never a request, for that long.

The swap is one reference assignment. If MLflow or S3 cannot be reached, or the new version is not
servable, the current bundle stays and :attr:`ModelStore.status` says why; a check that cannot reach the
registry swaps in a cached champion only when it is newer knowledge than what is served (see
:mod:`api.champion_cache`). After a load from the registry the store writes the champion cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from api.bundle import ModelBundle, ModelOrigin, build_bundle
from api.champion_cache import ChampionCache, Snapshot, SnapshotError, build_cache
from api.model_loader import MLMODEL, ModelFormatError
from api.registry_client import MlflowRegistry, ModelNotFoundError, ModelRef, RegistryError, RegistryUnavailableError
from api.settings import ApiSettings
from ml.contracts import ModelVersionTags

log = logging.getLogger(__name__)

#: How long a start without a local copy waits for the registry once the S3 copy is read (a healthy MLflow
#: answers within it, so the registry decides; a stalled one costs a Lambda cold start no more than this).
REGISTRY_GRACE_S = 0.5

Outcome = Literal["loaded", "unchanged", "failed"]
Resolution = ModelRef | Exception  # what an alias check found: a version, or why there is none


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


def cache_from_settings(settings: ApiSettings) -> ChampionCache:
    """The champion cache the settings describe (local directory, S3 prefix, publishing)."""
    return build_cache(
        settings.tracking_uri,
        settings.model_name,
        settings.model_alias,
        settings.cache_dir,
        settings.cache_s3_uri,
        settings.s3_endpoint_url,
        settings.check_timeout_s,
        settings.cache_publish,
    )


class ModelStore:
    """The current :class:`ModelBundle` of one served model, and how it gets replaced."""

    def __init__(
        self, settings: ApiSettings, source: ModelSource | None = None, cache: ChampionCache | None = None
    ) -> None:
        self.settings = settings
        self.source: ModelSource = source if source is not None else registry_source(settings)
        self.cache = cache if cache is not None else cache_from_settings(settings)
        self._bundle: ModelBundle | None = None
        self._status = RegistryStatus(source=self.source.description)
        self._check_lock = threading.Lock()  # one check at a time
        self._state_lock = threading.Lock()  # swaps, what the registry said last, the check thread
        self._start_lock = threading.Lock()
        self._registry_ref: ModelRef | None = None  # the version the registry named at its last answer
        self._registry_seen_at: float | None = None  # when that was
        self._confirmed_at: float | None = None  # when the registry last named the served version
        self._listeners: list[Callable[[RefreshResult], None]] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._checker: threading.Thread | None = None
        self._last_attempt = 0.0
        self._rejected: set[tuple[str, str, float]] = set()  # snapshots found unusable (not tried again)

    # ------------------------------------------------------------------------------------------- reading
    @property
    def bundle(self) -> ModelBundle | None:
        """The bundle being served, or None. Read it once per request."""
        return self._bundle

    @property
    def status(self) -> RegistryStatus:
        """The registry's state as of the last check."""
        return self._status

    @property
    def confirmed_at(self) -> float | None:
        """When the registry last named the served version (None: not since it was loaded, e.g. from the cache)."""
        return self._confirmed_at

    def add_listener(self, callback: Callable[[RefreshResult], None]) -> None:
        """Call ``callback(result)`` after every check (metrics, logs); it must be quick and not raise."""
        self._listeners.append(callback)

    def _notify(self, result: RefreshResult) -> None:
        for callback in self._listeners:
            try:
                callback(result)
            except Exception:
                log.exception("model store listener failed")

    # ------------------------------------------------------------------------------------------- starting
    def start(self) -> ModelBundle | None:
        """Serve the best model available now, never waiting on the registry if a cached champion exists.

        An alias check starts in a background thread. Meanwhile the local snapshot is loaded (without one,
        the S3 snapshot is read, and the registry decides if it answers before that read is done or within
        :data:`REGISTRY_GRACE_S` after it). The snapshot is served unless the registry has already named
        another version; the check then completes in the background (unchanged, a new version to load and
        swap in, or unreachable). Without a servable snapshot, waits for that check. Idempotent: does
        nothing once a model is served.
        """
        with self._start_lock:
            if self._bundle is not None:
                return self._bundle
            self._last_attempt = time.monotonic()
            answered, release, progress = threading.Event(), threading.Event(), threading.Event()
            resolution: list[Resolution] = []

            def check() -> None:
                resolution.append(self._resolve())
                answered.set()
                progress.set()
                release.wait()  # the start decides about the snapshot first, then the full check runs
                self._run_check(resolution[0])

            checker = threading.Thread(target=check, name="model-store-start-check", daemon=True)
            with self._state_lock:
                self._checker = checker
            checker.start()
            try:
                local = self.cache.read_valid(self.cache.local)
                if (local is None or not self._serve_snapshot_at_start(local)) and self.cache.remote is not None:
                    remote = self._remote_unless_registry_answers(answered, progress, resolution)
                    if remote is not None:
                        self._serve_snapshot_at_start(remote)
            except Exception:  # a broken cache must never stop the start: the check below still runs
                log.exception("reading the champion cache failed")
            finally:
                release.set()
            if self._bundle is None:
                checker.join()  # bounded by check_timeout_s and registry_timeout_s
            return self._bundle

    def _remote_unless_registry_answers(
        self, answered: threading.Event, progress: threading.Event, resolution: list[Resolution]
    ) -> Snapshot | None:
        """The S3 snapshot, read while the registry is asked; None if the registry answers with a version first.

        Never waits on a stalled registry (a SIGSTOPped MLflow): once the S3 copy is read, the registry gets
        :data:`REGISTRY_GRACE_S` more, then the copy is served and a later answer swaps in its version.
        """
        remote: list[Snapshot | None] = []

        def read() -> None:
            try:
                remote.append(self.cache.read_valid(self.cache.remote))
            finally:
                progress.set()

        reader = threading.Thread(target=read, name="champion-cache-s3", daemon=True)
        reader.start()
        progress.wait(self.settings.check_timeout_s * 2 + 1)  # S3 reads and alias checks share this timeout
        answered.wait(min(REGISTRY_GRACE_S, self.settings.check_timeout_s))  # at once if it has answered
        if answered.is_set() and isinstance(resolution[0], ModelRef):
            return None  # the registry answers: it decides, and its files are as near as S3's
        reader.join(self.settings.check_timeout_s * 2 + 1)
        return remote[0] if remote else None

    def _serve_snapshot_at_start(self, snapshot: Snapshot) -> bool:
        """Serve the snapshot unless the registry named another version; False if the snapshot is unusable."""
        bundle = self._build_snapshot(snapshot)
        if bundle is None:
            self._rejected.add(snapshot.key)
            return False
        with self._state_lock:
            named, answered = self._registry_ref, self._registry_seen_at is not None
            if answered and (named is None or not named.same_version(bundle.ref)):
                log.info(
                    "champion cache %s holds version %s but the registry names %s: not served",
                    snapshot.location,
                    bundle.ref.version,
                    f"version {named.version}" if named is not None else "no version",
                )
                return True
            if self._bundle is not None:
                return True
            self._bundle = bundle
            self._confirmed_at = self._registry_seen_at if answered else None
        log.info(
            "serving %s version %s from the champion cache %s (champion as of %s), %s",
            bundle.ref.uri,
            bundle.ref.version,
            snapshot.location,
            _iso(snapshot.pointer.observed_at),
            "confirmed by the registry" if answered else "checking the registry in the background",
        )
        if snapshot.store is not self.cache.local:
            self._copy_locally(snapshot)
        self._notify(RefreshResult("loaded", f"loaded version {bundle.ref.version} from {snapshot.location}", bundle))
        return True

    # ------------------------------------------------------------------------------------------- checking
    def refresh(self, force: bool = False) -> RefreshResult:
        """Check the alias now; load and swap in its version if it differs from the served one (or ``force``)."""
        with self._check_lock:
            result = self._check(self._resolve(), force)
        self._notify(result)
        return result

    def _run_check(self, resolution: Resolution) -> None:
        try:
            with self._check_lock:
                result = self._check(resolution, force=False)
            self._notify(result)
        except Exception:  # never let a background check die silently
            log.exception("unexpected error while checking for a new model")

    def _resolve(self) -> Resolution:
        """Ask the registry which version holds the alias; the answer or the exception, never raises."""
        result: Resolution
        try:
            result = self.source.resolve()
        except ModelNotFoundError as exc:  # an answer too: no version holds the alias
            result = exc
        except Exception as exc:  # unreachable, or an unforeseen failure: the registry told us nothing
            return exc
        with self._state_lock:
            self._registry_ref = result if isinstance(result, ModelRef) else None
            self._registry_seen_at = time.time()
        return result

    def _check(self, resolution: Resolution, force: bool) -> RefreshResult:
        now = time.time()
        self._last_attempt = time.monotonic()
        current = self._bundle
        if isinstance(resolution, RegistryUnavailableError):
            self._mark(now, reachable=False, error=str(resolution))
            fallback = self._serve_newer_snapshot(current, resolution)
            if fallback is not None:
                return fallback
            log.warning("model check failed, %s: %s", _keeping(current), resolution)
            return RefreshResult("failed", str(resolution), current, error=resolution)
        if isinstance(resolution, RegistryError):  # the registry answered: no version holds the alias
            self._mark(now, reachable=True, error=str(resolution))
            log.warning("model check found nothing servable, %s: %s", _keeping(current), resolution)
            return RefreshResult("failed", str(resolution), current, error=resolution)
        if isinstance(resolution, Exception):
            return self._unexpected(now, current, resolution)
        ref = resolution
        if not force and current is not None and ref.same_version(current.ref):
            self._mark(now, reachable=True)
            self._confirmed_at = now
            self.cache.ensure_published(ref, now)  # a model served from the local copy reaches S3 once
            return RefreshResult("unchanged", f"{ref.uri} is still version {ref.version}", current)
        files: dict[str, bytes] = {}

        def fetch(name: str) -> bytes:
            files[name] = self.source.fetch(ref, name)
            return files[name]

        try:
            bundle = build_bundle(ref, fetch(MLMODEL), fetch, self.settings.fast_preprocessing)
        except RegistryUnavailableError as exc:
            self._mark(now, reachable=False, error=str(exc))
            log.warning("model check failed, %s: %s", _keeping(current), exc)
            return RefreshResult("failed", str(exc), current, error=exc)
        except (RegistryError, ModelFormatError) as exc:  # the registry answered, but nothing servable
            self._mark(now, reachable=True, error=str(exc))
            log.warning("model check found nothing servable, %s: %s", _keeping(current), exc)
            return RefreshResult("failed", str(exc), current, error=exc)
        except Exception as exc:  # a model that breaks the loader in an unforeseen way must not stop the service
            return self._unexpected(now, current, exc)
        with self._state_lock:
            self._bundle = bundle  # the atomic swap
            self._confirmed_at = now
        self._mark(now, reachable=True)
        previous = f" (was version {current.ref.version})" if current is not None else ""
        detail = f"loaded {ref.uri} version {ref.version}{previous} in {bundle.load_seconds:.2f} s"
        log.info(detail)
        data_version = bundle.metadata.data_version or ModelVersionTags.from_tags(ref.tags).data_version
        self.cache.save(ref, files, now, data_version, self.settings.tracking_uri)
        return RefreshResult("loaded", detail, bundle, previous=current)

    def _unexpected(self, now: float, current: ModelBundle | None, exc: Exception) -> RefreshResult:
        log.error("model check failed unexpectedly, %s", _keeping(current), exc_info=exc)
        refused = ModelFormatError(f"the model could not be loaded: {type(exc).__name__}: {exc}")
        self._mark(now, reachable=True, error=str(refused))
        return RefreshResult("failed", str(refused), current, error=refused)

    # ------------------------------------------------------------------------------------------- the cache
    def _build_snapshot(self, snapshot: Snapshot) -> ModelBundle | None:
        """The bundle of a snapshot, or None (logged) if its files are corrupt, partial or not servable."""
        pointer = snapshot.pointer
        try:
            files = snapshot.files()

            def fetch(name: str) -> bytes:
                if name not in files:
                    raise SnapshotError(f"the model needs {name}, which the snapshot does not hold")
                return files[name]

            origin = ModelOrigin("cache", snapshot.location, pointer.observed_at)
            return build_bundle(pointer.ref(), fetch(MLMODEL), fetch, self.settings.fast_preprocessing, origin)
        except (SnapshotError, ModelFormatError) as exc:
            log.warning("champion cache %s rejected: %s", snapshot.location, exc)
        except OSError as exc:
            log.warning("champion cache %s cannot be read: %s", snapshot.location, exc)
        except Exception as exc:
            log.warning("champion cache %s rejected: %s: %s", snapshot.location, type(exc).__name__, exc)
        return None

    def _serve_newer_snapshot(
        self, current: ModelBundle | None, error: RegistryUnavailableError
    ) -> RefreshResult | None:
        """While the registry is unreachable: swap in the newest snapshot if it is newer knowledge than ours.

        Newer means: observed as champion after the registry last answered us (and after the served copy's
        own observation). A snapshot of the served version, or an older one, is never swapped in.
        """
        served_as_of = current.origin.observed_at if current is not None and current.origin is not None else None
        known_at = max((t for t in (self._registry_seen_at, served_as_of) if t is not None), default=None)
        for snapshot in self.cache.candidates():  # newest first
            pointer = snapshot.pointer
            if current is not None and pointer.ref().same_version(current.ref):
                return None
            if known_at is not None and pointer.observed_at <= known_at:
                return None
            if snapshot.key in self._rejected:
                continue
            bundle = self._build_snapshot(snapshot)
            if bundle is not None:
                return self._swap_in_snapshot(current, snapshot, bundle, error)
            self._rejected.add(snapshot.key)
        return None

    def _swap_in_snapshot(
        self, current: ModelBundle | None, snapshot: Snapshot, bundle: ModelBundle, error: RegistryUnavailableError
    ) -> RefreshResult:
        pointer = snapshot.pointer
        with self._state_lock:
            self._bundle = bundle
            self._confirmed_at = None
        was = f" (was version {current.ref.version})" if current is not None else ""
        detail = (
            f"registry unreachable: loaded version {bundle.ref.version}{was} from the champion cache "
            f"{snapshot.location} (champion as of {_iso(pointer.observed_at)})"
        )
        log.warning(detail)
        if snapshot.store is not self.cache.local:
            self._copy_locally(snapshot)
        return RefreshResult("loaded", detail, bundle, previous=current, error=error)

    def _copy_locally(self, snapshot: Snapshot) -> None:
        """Keep a copy of an S3 snapshot in the local directory (a restart then needs no network)."""
        if self.cache.local is None:
            return
        try:
            self.cache.save_pointer(snapshot.pointer, snapshot.files(), local=True, remote=False)
        except Exception as exc:
            log.warning("cannot copy %s to the local champion cache: %s", snapshot.location, exc)

    # ------------------------------------------------------------------------------------------- status
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

    # ------------------------------------------------------------------------------------------- scheduling
    def ensure_loaded(self) -> ModelBundle | None:
        """Load a model now (waiting) if none is loaded and the last attempt is older than ``retry_interval_s``."""
        if self._bundle is None and self._due(self.settings.retry_interval_s):
            self.refresh()
        return self._bundle

    def schedule_check(self) -> bool:
        """Start a background check if one is due and none is running; never waits (Lambda, per invocation).

        Due: ``poll_interval_s`` after the last check started (``retry_interval_s`` while no model is loaded;
        a ``poll_interval_s`` of 0 turns checks off once a model is loaded). Returns True if it started one.
        """
        interval = self.settings.poll_interval_s if self._bundle is not None else self.settings.retry_interval_s
        if self._bundle is not None and interval <= 0:
            return False
        with self._state_lock:
            if self._checker is not None and self._checker.is_alive():
                return False
            if not self._due(interval):
                return False
            self._last_attempt = time.monotonic()
            self._checker = threading.Thread(target=self._background_check, name="model-store-check", daemon=True)
            self._checker.start()
        return True

    def _background_check(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("unexpected error while checking for a new model")

    def wait_for_check(self, timeout: float | None = None) -> bool:
        """Wait for the background check in progress, if any; True if none is running afterwards (tests, tools)."""
        checker = self._checker
        if checker is not None:
            checker.join(timeout)
            return not checker.is_alive()
        return True

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
