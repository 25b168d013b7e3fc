"""Extract: read a dataset's source and land exactly what was read in the raw zone, with a manifest."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ml.contracts import RawManifest, RawPointer
from ml.lake import Lake
from ml.readers import read_source
from ml.spec import DatasetSpec


def raw_prefix(spec: DatasetSpec, sha256: str) -> str:
    """Prefix of one landed raw file: content-addressed, so re-extracting the same data is a no-op."""
    return f"raw/{spec.name}/{sha256[:16]}"


def raw_manifest_key(spec: DatasetSpec, sha256: str) -> str:
    """Key of the manifest of one landed raw file."""
    return f"{raw_prefix(spec, sha256)}/manifest.json"


def latest_raw_key(spec: DatasetSpec) -> str:
    """Key of the pointer to the newest raw manifest of a dataset."""
    return f"raw/{spec.name}/latest.json"


def extract(spec: DatasetSpec, lake: Lake) -> RawManifest:
    """Read the source, write ``data.csv`` and ``manifest.json`` to the raw zone, and point ``latest`` at it.

    The CSV holds the spec's readable column names and the target as class labels. The manifest records
    the source, the row count, the SHA-256 of the CSV bytes and the extraction time. Returns the manifest.
    """
    frame = read_source(spec)
    data = frame.to_csv(index=False).encode()
    sha256 = hashlib.sha256(data).hexdigest()
    prefix = raw_prefix(spec, sha256)
    manifest_key = raw_manifest_key(spec, sha256)
    if lake.exists(manifest_key):  # same bytes already landed: keep the first extraction's record
        manifest = lake.get_model(manifest_key, RawManifest)
    else:
        lake.put_bytes(f"{prefix}/data.csv", data, "text/csv")
        manifest = RawManifest(
            dataset=spec.name,
            source=spec.source.model_dump(mode="json", exclude={"options"})
            | {"options": {k: v for k, v in spec.source.options.items() if k != "rename"}},
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
            sha256=sha256,
            bytes=len(data),
            key=f"{prefix}/data.csv",
            extracted_at=datetime.now(UTC).isoformat(),
        )
        lake.put_model(manifest_key, manifest)  # written last: its presence means the landing is complete
    lake.put_model(latest_raw_key(spec), RawPointer(manifest=manifest_key, sha256=sha256))
    return manifest
