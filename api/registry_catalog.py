"""Which models the registry holds: registered models tagged with their dataset, and why one has no champion.

Model discovery (:mod:`api.model_fleet`) asks this module, never MLflow directly, through two REST calls of
the MLflow 3 server (same client, headers and ``check_timeout_s`` as :class:`api.registry_client.MlflowRegistry`):

1. ``GET /api/2.0/mlflow/registered-models/search?max_results=..&page_token=..`` (paginated) answers
   ``{"registered_models": [{"name", "tags": [{"key", "value"}], "aliases": [{"alias", "version"}]}],
   "next_page_token"}``; a model is served when its tags include ``mlops.dataset`` (the dataset spec's name;
   ``mlops.task`` gives its task). Filtering happens here, not in MLflow's filter language: tag keys with
   dots need quoting that servers have handled differently;
2. for a model without the served alias (the registry gate rejected every version), ``GET
   /api/2.0/mlflow/model-versions/search?filter=name='..'&order_by=version_number DESC&max_results=1``
   answers its latest version, whose gate tags (:class:`ml.contracts.GateTags`) say why it was rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from api.registry_client import MlflowRegistry, RegistryError, RegistryUnavailableError
from api.settings import ApiSettings
from ml.contracts import DATASET_TAG, TASK_TAG, GateTags

log = logging.getLogger(__name__)

SEARCH_MODELS_PATH = "/api/2.0/mlflow/registered-models/search"
SEARCH_VERSIONS_PATH = "/api/2.0/mlflow/model-versions/search"
PAGE_SIZE = 200
MAX_PAGES = 50  # 10,000 registered models: a loop bound against a server that keeps answering a token


@dataclass(frozen=True)
class GateVerdict:
    """The registry gate's decision on a model's latest version (the reason is a sentence for people)."""

    version: str
    decision: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form."""
        return {"version": self.version, "decision": self.decision, "reason": self.reason}


@dataclass(frozen=True)
class CatalogEntry:
    """One registered model the API may serve: its dataset, task and whether a version holds the alias."""

    dataset: str
    registered_model: str
    task: str | None = None
    champion_version: str | None = None  # None: no version holds the served alias
    latest_gate: GateVerdict | None = None  # only looked up when there is no champion


class ModelCatalog(Protocol):
    """Lists the registered models tagged with a dataset (MLflow, or a fake in tests)."""

    #: False when the last listing stopped before the end (``MAX_PAGES``): what it lacks may still exist.
    last_listing_complete: bool

    def list_models(self) -> list[CatalogEntry]:
        """Every tagged registered model; :class:`RegistryUnavailableError` if the registry cannot be asked."""
        ...


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {
        str(t["key"]): str(t.get("value", "")) for t in item.get("tags") or () if isinstance(t, dict) and "key" in t
    }


class MlflowCatalog:
    """The registered models of an MLflow server, over REST."""

    def __init__(self, settings: ApiSettings) -> None:
        self.client = MlflowRegistry(settings)  # raises RegistryError without an http(s) MLFLOW_TRACKING_URI
        self.alias = settings.model_alias
        self.last_listing_complete = True

    def list_models(self) -> list[CatalogEntry]:
        """Every registered model tagged ``mlops.dataset`` (all pages), with its champion or gate verdict."""
        entries = []
        for item in self._registered_models():
            tags = _tags(item)
            dataset = tags.get(DATASET_TAG, "").strip()
            if not dataset:
                continue
            name = str(item.get("name", ""))
            aliases = {
                str(a.get("alias")): str(a.get("version")) for a in item.get("aliases") or () if isinstance(a, dict)
            }
            champion = aliases.get(self.alias)
            gate = None if champion is not None else self._latest_gate(name)
            task = tags.get(TASK_TAG) or None
            entries.append(CatalogEntry(dataset, name, task, champion, gate))
        return entries

    def _registered_models(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params = {"max_results": str(PAGE_SIZE)} | ({"page_token": token} if token else {})
            page = self.client.get_json(SEARCH_MODELS_PATH, params)
            found.extend(m for m in page.get("registered_models") or () if isinstance(m, dict))
            token = page.get("next_page_token") or None
            if token is None:
                self.last_listing_complete = True
                return found
        log.warning("registered model search stopped after %d pages of %d", MAX_PAGES, PAGE_SIZE)
        self.last_listing_complete = False
        return found

    def _latest_gate(self, name: str) -> GateVerdict | None:
        """The gate verdict of ``name``'s newest version (None if it has none, or it cannot be read now)."""
        quoted = name.replace("'", "\\'")
        params: dict[str, str | list[str]] = {
            "filter": f"name='{quoted}'",
            "order_by": ["version_number DESC"],
            "max_results": "1",
        }
        try:
            versions = self.client.get_json(SEARCH_VERSIONS_PATH, params).get("model_versions") or []
        except RegistryUnavailableError:
            raise
        except RegistryError as exc:
            log.warning("cannot read the versions of %s: %s", name, exc)
            return None
        if not versions or not isinstance(versions[0], dict):
            return None
        return gate_verdict(str(versions[0].get("version", "?")), _tags(versions[0]))


def gate_verdict(version: str, tags: dict[str, str]) -> GateVerdict | None:
    """The gate verdict recorded in a version's tags, or None if the gate has not decided (or wrote garbage)."""
    try:
        gate = GateTags.from_tags(tags)
    except ValidationError:
        return None
    reason = gate.reason or f"the registry gate {gate.decision} version {version} (no reason recorded)"
    return GateVerdict(version, gate.decision, reason)


def catalog_from_settings(settings: ApiSettings) -> ModelCatalog | None:
    """The MLflow catalog the settings name, or None without an http(s) ``MLFLOW_TRACKING_URI``."""
    try:
        return MlflowCatalog(settings)
    except RegistryError:
        return None
