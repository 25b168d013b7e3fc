"""The last champion, kept where serving does not need MLflow: a local directory and the stack's S3 bucket.

Why and how
-----------
The service must start serving (a process restart, a new Lambda execution environment) while MLflow is slow
or down. A **snapshot** of the served version makes that possible: the files :func:`api.bundle.build_bundle`
reads (``MLmodel`` and the flavor's model file, byte for byte) plus a small **pointer** (``pointer.json``):
the registry's description of the version (name, alias, version, source, model and run ids, tags, data
version), every file's SHA-256 and size, and ``observed_at``, when the registry last named this version
for the alias.

* **Who writes**: the API itself, right after it loaded *and self-tested* a version from the registry, so a
  snapshot is always a model this service has served. Into its local directory (the process: under the
  stack's state directory; the container: its /tmp; a Lambda environment: its own /tmp), and, when
  ``MLOPS_API_CACHE_PUBLISH`` allows it (process and container, not the Lambda, whose role only reads),
  into S3 (``MLOPS_API_CACHE_S3_URI``, ``s3://serving/champion-cache`` in the stacks: a bucket of its own,
  which the API may write and the Lambda's role only read). Not the registry gate (``ml/registry.py``): the
  Airflow image ships only ``ml/``, and a gate-written copy would hold files the API never verified.
* **Who reads**: every start (the local directory first, S3 when it has nothing valid), and every check that
  cannot reach the registry (S3 may hold a newer champion, published by another API instance).
* **Layout**: :class:`SnapshotLayout` is the one definition of keys; the local directory and S3 use the
  same keys under their own roots (:class:`LocalBlobs`, :class:`S3Blobs`).
* **Atomicity**: a version's files are written first under ``v<version>/``, the pointer last (an atomic
  rename locally, one PUT on S3): a reader sees the old pointer or the new one with all its files.
* **Validity**: the pointer must parse, have this format, name this model and alias; every file must have
  its recorded size and SHA-256. Anything else rejects the snapshot with one warning naming the cause
  (:class:`SnapshotError`); a corrupt cache never loads.
* **Freshness**: the registry is the authority whenever it answers. A snapshot is served only when nothing
  is served yet and the registry has not named another version, or, while the registry is unreachable,
  when its ``observed_at`` is later than the served model's last confirmation (newer knowledge, e.g. a
  champion another instance loaded while this one was down). A snapshot older than what is served is
  never swapped in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from api.registry_client import ModelRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # boto3-stubs[s3] (dev dependency): types only

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
POINTER_NAME = "pointer.json"


class SnapshotError(ValueError):
    """A snapshot is missing files, corrupt, partial or for another model; the message says which and why."""


class BlobUnavailableError(OSError):
    """The place that holds snapshots cannot be read or written now (S3 down, disk full)."""


# ------------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SnapshotLayout:
    """Keys of one served model's snapshots, relative to a store's root (the one definition of the layout).

    ``<model>/<alias>/pointer.json`` names the current snapshot; ``<model>/<alias>/v<version>/<file>`` holds
    each version's files. Names are percent-encoded, so any registry name is one path segment.
    """

    model_name: str
    alias: str

    @property
    def prefix(self) -> str:
        """``<model>/<alias>``."""
        return f"{_segment(self.model_name)}/{_segment(self.alias)}"

    @property
    def pointer_key(self) -> str:
        """Key of the pointer."""
        return f"{self.prefix}/{POINTER_NAME}"

    def version_prefix(self, version: str) -> str:
        """Key prefix of one version's files."""
        return f"{self.prefix}/v{_segment(version)}"

    def file_key(self, version: str, filename: str) -> str:
        """Key of one file of one version."""
        return f"{self.version_prefix(version)}/{_segment(filename)}"


def _segment(value: str) -> str:
    """``value`` as one safe path segment (percent-encoded; ``.``, ``..`` and the empty name encoded too)."""
    quoted = urllib.parse.quote(value, safe="")
    return quoted if quoted.strip(".") else quoted.replace(".", "%2E") or "%00"


def registry_id(tracking_uri: str | None) -> str:
    """A short, stable directory name per registry URL (two stacks on one machine never share a local cache)."""
    return hashlib.sha256((tracking_uri or "none").encode()).hexdigest()[:16]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; ValueError for anything else."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"expected s3://<bucket>/<prefix>, got {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


# ------------------------------------------------------------------------------------------------- pointer
@dataclass(frozen=True)
class SnapshotFile:
    """One file of a snapshot: name, size and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SnapshotPointer:
    """What ``pointer.json`` says: which version, its registry description, its files, and when it was champion."""

    model_name: str
    alias: str
    version: str
    source: str
    artifact_uri: str
    files: tuple[SnapshotFile, ...]
    observed_at: float
    run_id: str | None = None
    model_id: str | None = None
    created_ms: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    data_version: str | None = None
    registry: str | None = None
    written_at: float = 0.0
    written_by: str = ""
    format: int = SNAPSHOT_FORMAT

    @classmethod
    def for_ref(
        cls,
        ref: ModelRef,
        files: Mapping[str, bytes],
        observed_at: float,
        data_version: str | None,
        registry: str | None,
    ) -> SnapshotPointer:
        """The pointer of ``ref`` with these files, as seen in the registry at ``observed_at``."""
        return cls(
            model_name=ref.name,
            alias=ref.alias,
            version=ref.version,
            source=ref.source,
            artifact_uri=ref.artifact_uri,
            files=tuple(SnapshotFile(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in sorted(files.items())),
            observed_at=observed_at,
            run_id=ref.run_id,
            model_id=ref.model_id,
            created_ms=ref.created_ms,
            tags=dict(ref.tags),
            data_version=data_version,
            registry=registry,
            written_at=time.time(),
            written_by=f"{socket.gethostname()}:{os.getpid()}",
        )

    def ref(self) -> ModelRef:
        """The registry reference this snapshot stands for."""
        return ModelRef(
            name=self.model_name,
            version=self.version,
            alias=self.alias,
            source=self.source,
            artifact_uri=self.artifact_uri,
            run_id=self.run_id,
            model_id=self.model_id,
            created_ms=self.created_ms,
            tags=dict(self.tags),
        )

    def to_json(self) -> bytes:
        """The pointer file's content."""
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, layout: SnapshotLayout) -> SnapshotPointer:
        """Parse and check a pointer for ``layout``'s model and alias; :class:`SnapshotError` if it is not one."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise TypeError(f"a JSON {type(doc).__name__}")
            if doc.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotError(f"pointer format {doc.get('format')!r}, expected {SNAPSHOT_FORMAT}")
            files = tuple(SnapshotFile(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in doc.pop("files"))
            pointer = cls(**doc, files=files)
            float(pointer.observed_at)
        except SnapshotError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise SnapshotError(f"unreadable pointer: {type(exc).__name__}: {exc}") from None
        if (pointer.model_name, pointer.alias) != (layout.model_name, layout.alias):
            raise SnapshotError(
                f"pointer is for {pointer.model_name}@{pointer.alias}, not {layout.model_name}@{layout.alias}"
            )
        if not pointer.files:
            raise SnapshotError("pointer lists no files")
        return pointer


# ------------------------------------------------------------------------------------------------- blob stores
class BlobStore(Protocol):
    """Bytes by key; the local directory and S3 implement it."""

    @property
    def location(self) -> str:
        """Where the blobs live, for logs and /ready."""
        ...

    def get(self, key: str) -> bytes | None:
        """The blob, or None if there is none; :class:`BlobUnavailableError` if the store cannot be read."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store a blob (replacing it atomically); :class:`BlobUnavailableError` on failure."""
        ...


class LocalBlobs:
    """Blobs as files under ``root``; writes go to a temporary file first and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        """The directory."""
        return str(self.root)

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BlobUnavailableError(f"cannot read {self.root / key}: {exc}") from None

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically (temporary file, fsync, rename)."""
        path = self.root / key
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BlobUnavailableError(f"cannot write {path}: {exc}") from None

    def prune(self, layout: SnapshotLayout, keep: set[str]) -> None:
        """Delete the version directories of ``layout`` other than those of the versions in ``keep``."""
        base = self.root / layout.prefix
        wanted = {Path(layout.version_prefix(v)).name for v in keep}
        for child in base.glob("v*") if base.is_dir() else ():
            if child.is_dir() and child.name not in wanted:
                shutil.rmtree(child, ignore_errors=True)


class S3Blobs:
    """Blobs as objects under ``s3://bucket/prefix/`` (boto3, imported on first use; short timeouts, one retry)."""

    def __init__(
        self,
        uri: str,
        endpoint_url: str | None,
        connect_timeout: float,
        read_timeout: float,
        client: S3Client | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.endpoint_url = endpoint_url
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client = client
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _s3(self) -> S3Client:
        with self._lock:
            if self._client is None:
                import boto3  # only when a snapshot is read or written: the common path needs no botocore
                from botocore.config import Config

                config = Config(
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                )
                self._client = boto3.client("s3", endpoint_url=self.endpoint_url, config=config)
            return self._client

    def prepare(self) -> None:
        """Import boto3 and create the client now rather than on first use (see :meth:`ChampionCache.prepare`)."""
        self._s3()

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        s3 = self._s3()
        try:
            return bytes(s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except Exception as exc:  # botocore raises many types
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise BlobUnavailableError(f"cannot read {self.location}/{key}: {exc}") from None

    def put(self, key: str, data: bytes) -> None:
        """Upload ``data`` (one PUT: S3 replaces an object atomically)."""
        try:
            self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise BlobUnavailableError(f"cannot write {self.location}/{key}: {exc}") from None


# ------------------------------------------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class Snapshot:
    """A valid pointer and the store it was read from; :meth:`files` reads and verifies the files."""

    pointer: SnapshotPointer
    store: SnapshotStore

    @property
    def key(self) -> tuple[str, str, float]:
        """Identifies this snapshot (store, version, when it was written)."""
        return (self.store.location, self.pointer.version, self.pointer.written_at)

    @property
    def location(self) -> str:
        """Where the snapshot lives (directory or S3 URI of its version)."""
        return f"{self.store.blobs.location}/{self.store.layout.version_prefix(self.pointer.version)}"

    def files(self) -> dict[str, bytes]:
        """Every file, checked against the pointer's size and SHA-256; :class:`SnapshotError` otherwise."""
        return self.store.read_files(self.pointer)


class SnapshotStore:
    """The snapshots of one served model in one blob store (a local directory or an S3 prefix)."""

    def __init__(self, blobs: BlobStore, layout: SnapshotLayout, kind: str) -> None:
        self.blobs = blobs
        self.layout = layout
        self.kind = kind  # "local" or "s3": named in logs and /ready

    @property
    def location(self) -> str:
        """Where this store's pointer lives."""
        return f"{self.blobs.location}/{self.layout.pointer_key}"

    def read(self) -> Snapshot | None:
        """The current snapshot, or None if there is none. Raises :class:`SnapshotError` if its pointer is bad."""
        data = self.blobs.get(self.layout.pointer_key)
        if data is None:
            return None
        return Snapshot(SnapshotPointer.from_json(data, self.layout), self)

    def read_files(self, pointer: SnapshotPointer) -> dict[str, bytes]:
        """The files of ``pointer``'s version, each checked against its recorded size and SHA-256."""
        files = {}
        for expected in pointer.files:
            data = self.blobs.get(self.layout.file_key(pointer.version, expected.name))
            if data is None:
                raise SnapshotError(f"{expected.name} of version {pointer.version} is missing (partial snapshot)")
            digest = hashlib.sha256(data).hexdigest()
            if len(data) != expected.size or digest != expected.sha256:
                raise SnapshotError(
                    f"{expected.name} of version {pointer.version} fails its checksum: {len(data)} bytes, sha256 "
                    f"{digest[:16]}..., expected {expected.size} bytes, sha256 {expected.sha256[:16]}..."
                )
            files[expected.name] = data
        return files

    def write(self, pointer: SnapshotPointer, files: Mapping[str, bytes]) -> None:
        """Write the files, then the pointer (so a reader never sees a pointer without its files).

        A local store then deletes the files of versions other than this one and the one it replaces.
        """
        previous = self._pointed_version() if isinstance(self.blobs, LocalBlobs) else None
        for entry in pointer.files:
            self.blobs.put(self.layout.file_key(pointer.version, entry.name), files[entry.name])
        self.blobs.put(self.layout.pointer_key, pointer.to_json())
        if isinstance(self.blobs, LocalBlobs):
            self.blobs.prune(self.layout, {pointer.version} | ({previous} if previous else set()))

    def _pointed_version(self) -> str | None:
        try:
            snapshot = self.read()
        except (SnapshotError, BlobUnavailableError):
            return None
        return snapshot.pointer.version if snapshot else None


class ChampionCache:
    """The snapshot stores of one served model: a local directory and/or S3, and whether to publish to S3."""

    def __init__(self, local: SnapshotStore | None, remote: SnapshotStore | None, publish: bool) -> None:
        self.local = local
        self.remote = remote
        self.publish = publish and remote is not None
        self._published: set[tuple[str, str]] = set()

    @property
    def enabled(self) -> bool:
        """True if there is anywhere to read snapshots from."""
        return self.local is not None or self.remote is not None

    def describe(self) -> dict[str, object]:
        """Where snapshots are read and written (for /ready)."""
        return {
            "local": self.local.location if self.local else None,
            "s3": self.remote.location if self.remote else None,
            "publish_to_s3": self.publish,
        }

    @staticmethod
    def read_valid(store: SnapshotStore | None) -> Snapshot | None:
        """The store's snapshot if its pointer is valid; a bad or unreadable one is logged and skipped."""
        if store is None:
            return None
        try:
            return store.read()
        except SnapshotError as exc:
            log.warning("champion cache %s rejected: %s", store.location, exc)
        except BlobUnavailableError as exc:
            log.warning("champion cache %s cannot be read: %s", store.location, exc)
        return None

    def prepare(self) -> None:
        """Create the S3 client at start-up instead of in a later check (errors are logged, never raised).

        Importing boto3 and building a client take about half a second of CPU. In a Lambda environment a
        check that does it while invocations are served stalls them, and LocalStack (like Lambda) answers
        a stalled environment by starting more: under a steady load, one slow check becomes a burst of cold
        starts. The Lambda handler calls this in its init phase.
        """
        prepare = getattr(getattr(self.remote, "blobs", None), "prepare", None)
        if prepare is not None:
            try:
                prepare()
            except Exception:
                log.warning("could not prepare the S3 client of the champion cache", exc_info=True)

    def candidates(self) -> list[Snapshot]:
        """The snapshots with a valid pointer, local and S3, newest ``observed_at`` first (local first on a tie)."""
        found = [s for s in (self.read_valid(self.local), self.read_valid(self.remote)) if s is not None]
        return sorted(found, key=lambda s: -s.pointer.observed_at)

    def newest(self) -> Snapshot | None:
        """The snapshot with a valid pointer and the latest ``observed_at`` (files not checked yet)."""
        found = self.candidates()
        return found[0] if found else None

    def save(
        self,
        ref: ModelRef,
        files: Mapping[str, bytes],
        observed_at: float,
        data_version: str | None,
        registry: str | None,
    ) -> None:
        """Write the snapshot locally and, when publishing, to S3 (errors are logged, never raised)."""
        pointer = SnapshotPointer.for_ref(ref, files, observed_at, data_version, registry)
        self.save_pointer(pointer, files, local=True, remote=self.publish)

    def save_pointer(self, pointer: SnapshotPointer, files: Mapping[str, bytes], local: bool, remote: bool) -> None:
        """Write a snapshot locally and/or to S3 (S3 only if it holds nothing newer); errors are logged."""
        targets = ([self.local] if local else []) + ([self.remote] if remote else [])
        for store in targets:
            if store is None:
                continue
            if store is self.remote and not self._remote_is_older(pointer):
                continue
            try:
                store.write(pointer, files)
            except BlobUnavailableError as exc:
                log.warning("cannot write the champion cache %s: %s", store.location, exc)
                continue
            if store is self.remote:
                self._published.add((pointer.version, pointer.source))
            log.info(
                "champion cache %s: version %s saved (observed at %s)",
                store.location,
                pointer.version,
                _iso(pointer.observed_at),
            )

    def _remote_is_older(self, pointer: SnapshotPointer) -> bool:
        """Whether S3 lacks this version and holds nothing newer (one GET; never overwrite newer knowledge)."""
        if (pointer.version, pointer.source) in self._published:
            return False
        current = self.read_valid(self.remote)
        if current is None:
            return True
        if (current.pointer.version, current.pointer.source) == (pointer.version, pointer.source):
            self._published.add((pointer.version, pointer.source))
            return False
        return current.pointer.observed_at < pointer.observed_at

    def ensure_published(self, ref: ModelRef, observed_at: float) -> None:
        """Publish the local snapshot of ``ref`` to S3 if S3 does not have it yet (once per version)."""
        if not self.publish or (ref.version, ref.source) in self._published:
            return
        snapshot = self.read_valid(self.local)
        if snapshot is None or not ref.same_version(snapshot.pointer.ref()):
            return
        try:
            files = snapshot.files()
        except (SnapshotError, BlobUnavailableError) as exc:
            log.warning("champion cache %s not published: %s", snapshot.location, exc)
            return
        previous = snapshot.pointer
        pointer = SnapshotPointer.for_ref(
            ref, files, max(observed_at, previous.observed_at), previous.data_version, previous.registry
        )
        self.save_pointer(pointer, files, local=False, remote=True)


def build_cache(
    tracking_uri: str | None,
    model_name: str,
    alias: str,
    cache_dir: Path | None,
    s3_uri: str | None,
    s3_endpoint_url: str | None,
    timeout_s: float,
    publish: bool,
    s3_client_factory: Callable[[], S3Client] | None = None,
) -> ChampionCache:
    """The cache of one served model: ``cache_dir/<registry id>/...`` locally, ``s3_uri/...`` on S3 (each optional)."""
    layout = SnapshotLayout(model_name, alias)
    local = SnapshotStore(LocalBlobs(cache_dir / registry_id(tracking_uri)), layout, "local") if cache_dir else None
    remote = None
    if s3_uri:
        client = s3_client_factory() if s3_client_factory else None
        remote = SnapshotStore(S3Blobs(s3_uri, s3_endpoint_url, timeout_s, timeout_s, client), layout, "s3")
    return ChampionCache(local, remote, publish)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
