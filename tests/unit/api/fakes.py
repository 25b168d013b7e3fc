"""An in-memory stand-in for the MLflow registry: versions are directories saved by ``mlflow.sklearn.save_model``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from api.registry_catalog import CatalogEntry
from api.registry_client import ModelNotFoundError, ModelRef, RegistryUnavailableError
from ml.contracts import ModelVersionTags


class FakeRegistry:
    """Implements :class:`api.model_store.ModelSource`; tests move the alias and switch the registry off."""

    def __init__(self, name: str = "test_model", alias: str = "champion") -> None:
        self.name = name
        self.alias = alias
        self.versions: dict[str, Path] = {}
        self.alias_version: str | None = None
        self.down = False
        self.stall_s = 0.0  # > 0: each call waits this long, then fails like a request to a stopped server
        self.resolves = 0
        self.fetches = 0
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"models:/{self.name}@{self.alias} on the fake registry"

    def publish(self, version: str, model_dir: Path, promote: bool = True) -> None:
        with self._lock:
            self.versions[version] = model_dir
            if promote:
                self.alias_version = version

    def promote(self, version: str) -> None:
        with self._lock:
            self.alias_version = version

    def _stall(self) -> None:
        if self.stall_s > 0:
            time.sleep(self.stall_s)
            raise RegistryUnavailableError(f"cannot reach MLflow at http://fake: no answer within {self.stall_s:g} s")

    def resolve(self) -> ModelRef:
        self.resolves += 1
        self._stall()
        if self.down:
            raise RegistryUnavailableError("cannot reach MLflow at http://fake: connection refused")
        version = self.alias_version
        if version is None:
            raise ModelNotFoundError(f"no version of registered model {self.name!r} holds the alias {self.alias!r}")
        return ModelRef(
            name=self.name,
            version=version,
            alias=self.alias,
            source=f"models:/m-{version}",
            artifact_uri=self.versions[version].as_uri(),
            run_id=f"run-{version}",
            model_id=f"m-{version}",
            tags=ModelVersionTags(data_version=f"v-{version}").to_tags(),
        )

    def fetch(self, ref: ModelRef, filename: str) -> bytes:
        self.fetches += 1
        self._stall()
        if self.down:
            raise RegistryUnavailableError("cannot reach the artifact store: connection refused")
        return (self.versions[ref.version] / filename).read_bytes()


class FakeCatalog:
    """Implements :class:`api.registry_catalog.ModelCatalog`: the registered models tests put in ``entries``."""

    def __init__(self, entries: list[CatalogEntry] | None = None) -> None:
        self.entries = list(entries or [])
        self.down = False
        self.calls = 0
        self.last_listing_complete = True  # set False to stand for a listing cut short (MAX_PAGES)

    def list_models(self) -> list[CatalogEntry]:
        self.calls += 1
        if self.down:
            raise RegistryUnavailableError("cannot reach MLflow at http://fake: connection refused")
        return list(self.entries)
