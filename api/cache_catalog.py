"""Which models the champion cache holds, so that a start without MLflow serves every one of them.

The champion cache (:mod:`api.champion_cache`) keeps one snapshot per registered model under
``<root>/<model>/<alias>/pointer.json``. This module lists the ``<model>`` segments of the local directory
(``MLOPS_API_CACHE_DIR/<registry id>``), or, when it holds none, of the S3 prefix (``MLOPS_API_CACHE_S3_URI``;
one ``ListObjectsV2`` with a delimiter), and reads each snapshot's ``MLmodel`` (a few kB) for the dataset
spec's name and task. It never loads a model: the model stores do that.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from api.champion_cache import ChampionCache, LocalBlobs, S3Blobs, SnapshotStore, build_cache
from api.model_loader import MLMODEL, parse_mlmodel
from api.settings import ApiSettings
from ml.spec import parse_spec

log = logging.getLogger(__name__)

MAX_LISTED = 1000  # registered models listed from one cache root


@dataclass(frozen=True)
class CachedModel:
    """A registered model with a snapshot in the champion cache, and the dataset its spec names."""

    dataset: str
    registered_model: str
    task: str


def _local_names(blobs: LocalBlobs) -> list[str]:
    root = blobs.root
    if not root.is_dir():
        return []
    return sorted(urllib.parse.unquote(p.name) for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _s3_names(blobs: S3Blobs) -> list[str]:
    prefix = f"{blobs.prefix}/" if blobs.prefix else ""
    page = blobs._s3().list_objects_v2(Bucket=blobs.bucket, Prefix=prefix, Delimiter="/", MaxKeys=MAX_LISTED)
    names = [str(p.get("Prefix", ""))[len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes") or ()]
    return sorted(urllib.parse.unquote(n) for n in names if n)


def _dataset_of(store: SnapshotStore | None) -> CachedModel | None:
    """The dataset and task of the snapshot in ``store`` (None if there is none or it is unreadable)."""
    snapshot = ChampionCache.read_valid(store)
    if snapshot is None or store is None:
        return None
    data = store.blobs.get(store.layout.file_key(snapshot.pointer.version, MLMODEL))
    if data is None:
        return None
    metadata: Any = parse_mlmodel(data).get("metadata") or {}
    spec = parse_spec(metadata["dataset_spec"], origin=snapshot.location)
    return CachedModel(spec.name, snapshot.pointer.model_name, spec.task.value)


def _listing(settings: ApiSettings) -> tuple[str, list[str]]:
    """Where the registered model names were listed, and the names (local first, S3 when local has none)."""
    probe = build_cache(
        settings.tracking_uri, "_", settings.model_alias, settings.cache_dir, settings.cache_s3_uri,
        settings.s3_endpoint_url, settings.check_timeout_s, publish=False,
    )  # fmt: skip
    if probe.local is not None and isinstance(probe.local.blobs, LocalBlobs):
        names = _local_names(probe.local.blobs)
        if names:
            return "local", names
    if probe.remote is not None and isinstance(probe.remote.blobs, S3Blobs):
        return "s3", _s3_names(probe.remote.blobs)
    return "none", []


def cached_models(settings: ApiSettings) -> list[CachedModel]:
    """The models the champion cache can serve, one per dataset (errors are logged, never raised)."""
    try:
        kind, names = _listing(settings)
    except Exception as exc:  # S3 down or refusing: starting without the list is still a start
        log.warning("cannot list the champion cache: %s", exc)
        return []
    found: dict[str, CachedModel] = {}
    for name in names[:MAX_LISTED]:
        cache = build_cache(
            settings.tracking_uri, name, settings.model_alias, settings.cache_dir, settings.cache_s3_uri,
            settings.s3_endpoint_url, settings.check_timeout_s, publish=False,
        )  # fmt: skip
        try:
            model = _dataset_of(cache.local if kind == "local" else cache.remote)
        except Exception as exc:  # a foreign or corrupt snapshot: skip it, the registry may still name the model
            log.warning("champion cache entry %s skipped: %s: %s", name, type(exc).__name__, exc)
            continue
        if model is not None and model.dataset not in found:
            found[model.dataset] = model
    return sorted(found.values(), key=lambda m: m.dataset)
