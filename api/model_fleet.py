"""The served models, side by side: one :class:`~api.model_store.ModelStore` per dataset, found without a restart.

A model is keyed by its dataset (spec) name, e.g. ``breast_cancer``, ``wine``, ``diabetes``. Each has its own
store (champion cache, checks, hot swap), so a new champion of one model swaps in while the others keep
serving. The set of models grows in three ways:

* **the default model** (``MLOPS_API_DEFAULT_MODEL``, default ``breast_cancer``; its registered model is
  ``MLOPS_MODEL_NAME``) always has a store: the legacy routes (``/predict``, ``/model``...) serve it;
* **the champion cache** at start (:func:`api.cache_catalog.cached_models`: the local directory, else the S3
  prefix): every cached model is served before MLflow answers, so an MLflow outage at start still serves them;
* **discovery** (:meth:`ModelFleet.discover`): the registry's models tagged ``mlops.dataset``
  (:mod:`api.registry_catalog`), off the request path. In a long-running process a thread runs it at start
  and then every ``poll_interval_s`` (``retry_interval_s`` while the registry cannot be reached); on Lambda
  :meth:`ModelFleet.schedule_check` starts one at most once per interval, like the stores' checks.

``MLOPS_API_MODELS`` (comma-separated dataset names) restricts the set. A model leaves it (**retired**: its
routes answer 404, its paths leave ``/docs``, its metrics go) when a complete listing of the registry no
longer has it: its registered model was deleted, or its ``mlops.dataset`` tag removed. An unreachable
registry or a listing cut short retires nothing; the default model is never retired (the legacy routes
keep serving its last champion).

Looking a model up is one dict read (:meth:`ModelFleet.get`): the dict is replaced, never changed in place,
when a model is added, so requests never take a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from api.cache_catalog import CachedModel, cached_models
from api.model_store import ModelStore, get_shared_store
from api.registry_catalog import CatalogEntry, ModelCatalog, catalog_from_settings
from api.settings import ApiSettings

log = logging.getLogger(__name__)

StoreFactory = Callable[[ApiSettings], ModelStore]
CacheLister = Callable[[ApiSettings], list[CachedModel]]
_FROM_SETTINGS = object()


@dataclass(frozen=True)
class DiscoveryStatus:
    """The last registry listing: when, whether it answered, what it found or why it failed."""

    last_run: float | None = None
    ok: bool | None = None
    error: str | None = None
    found: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (time as ISO 8601 UTC)."""
        when = None if self.last_run is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_run))
        return {"last_run": when, "ok": self.ok, "error": self.error, "found": list(self.found)}


class ModelFleet:
    """The served models by dataset name, and the discovery that adds new ones."""

    def __init__(
        self,
        settings: ApiSettings,
        default_store: ModelStore | None = None,
        catalog: ModelCatalog | object | None = _FROM_SETTINGS,
        store_factory: StoreFactory = get_shared_store,
        list_cache: CacheLister = cached_models,
    ) -> None:
        self.settings = settings
        self.default_name = settings.default_model
        self.catalog: ModelCatalog | None = (
            catalog_from_settings(settings) if catalog is _FROM_SETTINGS else catalog  # type: ignore[assignment]
        )
        self._factory = store_factory
        self._list_cache = list_cache
        default = default_store if default_store is not None else store_factory(settings)
        self._stores: dict[str, ModelStore] = {self.default_name: default}
        self._entries: dict[str, CatalogEntry] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, ModelStore], None]] = []
        self._retire_listeners: list[Callable[[str], None]] = []
        self.generation = 0  # bumped whenever a model is added or retired (the OpenAPI document is rebuilt then)
        self.discovery = DiscoveryStatus()
        self._polling = False
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._discoverer: threading.Thread | None = None
        self._last_attempt = 0.0

    # ------------------------------------------------------------------------------------------- reading
    @property
    def default(self) -> ModelStore:
        """The store of the default model (the legacy routes' model)."""
        return self._stores[self.default_name]

    def get(self, name: str) -> ModelStore | None:
        """The store of dataset ``name``, or None: one dict read, no lock."""
        return self._stores.get(name)

    def names(self) -> list[str]:
        """The served dataset names, the default first, then alphabetical."""
        return sorted(self._stores, key=lambda n: (n != self.default_name, n))

    def stores(self) -> list[tuple[str, ModelStore]]:
        """``(name, store)`` pairs in :meth:`names` order."""
        current = self._stores
        return [(name, current[name]) for name in self.names() if name in current]

    def entry(self, name: str) -> CatalogEntry | None:
        """What the registry said about ``name`` at the last discovery (None: not listed, or not asked yet)."""
        return self._entries.get(name)

    def add_listener(self, callback: Callable[[str, ModelStore], None]) -> None:
        """Call ``callback(name, store)`` for every store, now for the existing ones and later for new ones."""
        self._listeners.append(callback)
        for name, store in self.stores():
            callback(name, store)

    def add_retire_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` when a model is retired (e.g. to drop its metrics)."""
        self._retire_listeners.append(callback)

    # ------------------------------------------------------------------------------------------- adding
    def _add(self, dataset: str, registered_model: str) -> ModelStore | None:
        """Create the store of a new model (None if ``dataset`` is served already or not allowed)."""
        if not self.settings.serves(dataset):
            return None
        with self._lock:
            existing = self._stores.get(dataset)
            if existing is not None:
                if existing.settings.model_name != registered_model:
                    log.warning(
                        "model %s is served from registered model %s; %s (also tagged %s) is ignored",
                        dataset, existing.settings.model_name, registered_model, dataset,
                    )  # fmt: skip
                return None
            store = self._factory(self.settings.for_model(registered_model))
            self._stores = {**self._stores, dataset: store}
            self.generation += 1
        log.info("serving model %s (registered model %s)", dataset, registered_model)
        for callback in self._listeners:
            try:
                callback(dataset, store)
            except Exception:
                log.exception("model fleet listener failed")
        return store

    def _launch(self, stores: list[ModelStore]) -> None:
        """Start stores in parallel (each bounded by its timeouts); poll them if the fleet polls."""
        threads = [threading.Thread(target=s.start, name="model-store-start", daemon=True) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self._polling:
            for store in stores:
                store.start_polling()

    # ------------------------------------------------------------------------------------------- starting
    def start(self) -> None:
        """Serve the default model and every model of the champion cache (registry answers are not awaited).

        Each store starts as :meth:`ModelStore.start` does (the cached champion at once, else the registry
        within its timeouts); a registry discovery then runs in the background (:meth:`schedule_check`).
        """
        for model in self._list_cache(self.settings):
            self._add(model.dataset, model.registered_model)
        self._launch([store for _, store in self.stores()])
        self.schedule_check()

    # ------------------------------------------------------------------------------------------- discovery
    def discover(self) -> DiscoveryStatus:
        """List the registry's tagged models once; add and start the new ones. Never raises."""
        self._last_attempt = time.monotonic()
        if self.catalog is None:
            self.discovery = DiscoveryStatus(time.time(), False, "no MLflow server configured (MLFLOW_TRACKING_URI)")
            return self.discovery
        try:
            entries = self.catalog.list_models()
        except Exception as exc:  # unreachable registry or an unforeseen answer: keep serving what we have
            log.warning("model discovery failed, serving %s: %s", ", ".join(self.names()), exc)
            self.discovery = DiscoveryStatus(time.time(), False, str(exc), self.discovery.found)
            return self.discovery
        allowed = {e.dataset: e for e in entries if self.settings.serves(e.dataset)}
        self._entries = allowed
        if self.catalog.last_listing_complete:
            self._retire({(e.dataset, e.registered_model) for e in entries})
        added = [s for s in (self._add(e.dataset, e.registered_model) for e in allowed.values()) if s is not None]
        self.discovery = DiscoveryStatus(time.time(), True, None, tuple(sorted(allowed)))
        if added:
            self._launch(added)
        return self.discovery

    def _retire(self, listed: set[tuple[str, str]]) -> None:
        """Stop serving every model but the default whose (dataset, registered model) the registry no longer lists."""
        with self._lock:
            gone = {
                name: store
                for name, store in self._stores.items()
                if name != self.default_name and (name, store.settings.model_name) not in listed
            }
            if not gone:
                return
            self._stores = {name: store for name, store in self._stores.items() if name not in gone}
            self.generation += 1
        for name, store in gone.items():
            store.stop_polling()
            log.warning(
                "model %s retired: the registry no longer lists registered model %s tagged %s (deleted or "
                "untagged); its routes answer 404", name, store.settings.model_name, name,
            )  # fmt: skip
            for callback in self._retire_listeners:
                try:
                    callback(name)
                except Exception:
                    log.exception("model fleet retire listener failed")

    def schedule_check(self) -> bool:
        """Start a background discovery if one is due and none runs, and let every store schedule its check.

        Due: ``poll_interval_s`` after the last one (``retry_interval_s`` while the last one failed; with a
        ``poll_interval_s`` of 0, once). Never waits (Lambda calls it per invocation). True if it started one.
        """
        for _, store in self.stores():
            store.schedule_check()
        failed = self.discovery.ok is False
        interval = self.settings.retry_interval_s if failed else self.settings.poll_interval_s
        with self._lock:
            if self._discoverer is not None and self._discoverer.is_alive():
                return False
            first = self._last_attempt == 0.0
            if not first and ((interval <= 0 and not failed) or time.monotonic() - self._last_attempt < interval):
                return False
            self._last_attempt = time.monotonic()
            self._discoverer = threading.Thread(target=self.discover, name="model-discovery", daemon=True)
            self._discoverer.start()
        return True

    def wait_for_discovery(self, timeout: float | None = None) -> bool:
        """Wait for the discovery in progress, if any; True if none runs afterwards (tests, tools)."""
        thread = self._discoverer
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ------------------------------------------------------------------------------------------- polling
    def start_polling(self) -> None:
        """Poll every store and re-discover every ``poll_interval_s`` (nothing repeats when it is 0)."""
        self._polling = True
        for _, store in self.stores():
            store.start_polling()
        if self.settings.poll_interval_s <= 0 or (self._poller is not None and self._poller.is_alive()):
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="model-discovery-poller", daemon=True)
        self._poller.start()

    def stop_polling(self, timeout: float = 5.0) -> None:
        """Stop discovery and every store's polling."""
        self._polling = False
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            self._poller = None
        for _, store in self.stores():
            store.stop_polling(timeout)

    def _poll(self) -> None:
        while True:
            failed = self.discovery.ok is False
            wait = self.settings.retry_interval_s if failed else self.settings.poll_interval_s
            if self._stop.wait(max(wait, 0.05)):
                return
            self.discover()


_SHARED: dict[tuple[str | None, str, str], ModelFleet] = {}
_SHARED_LOCK = threading.Lock()


def get_shared_fleet(settings: ApiSettings) -> ModelFleet:
    """The process-wide fleet for the settings (its default store is :func:`get_shared_store`'s)."""
    key = settings.cache_key()
    with _SHARED_LOCK:
        fleet = _SHARED.get(key)
        if fleet is None:
            fleet = _SHARED[key] = ModelFleet(settings)
        return fleet
