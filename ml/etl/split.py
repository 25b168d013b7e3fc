"""Split: a deterministic, seeded, stratified train/test split of the validated rows, written as Parquet.

No imputation, scaling or encoding happens here: those are fitted inside the model pipeline
(:mod:`ml.model`), so the prediction API can take raw feature values.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sklearn.model_selection import train_test_split

from ml.contracts import SplitClassBalance, SplitManifest, SplitPointer, SplitRows, ValidationReport
from ml.lake import Lake
from ml.spec import DatasetSpec


def current_split_key(spec: DatasetSpec) -> str:
    """Key of the pointer to the current processed split of a dataset."""
    return f"processed/{spec.name}/current.json"


def data_version(raw_sha256: str, schema_hash: str, seed: int, test_size: float) -> str:
    """Identify a processed split by everything it depends on: raw bytes, schema, seed and test size."""
    key = f"{raw_sha256}|{schema_hash}|{seed}|{test_size}"
    return "v-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def split(spec: DatasetSpec, lake: Lake, seed: int, test_size: float, report: ValidationReport) -> SplitManifest:
    """Split the validated rows named by a validation ``report`` into train and test Parquet files.

    Writes ``processed/<dataset>/<version>/{train,test}.parquet`` and ``manifest.json`` (row counts, class
    balance, schema hash, data version), then moves ``current.json`` to it. Returns the manifest.
    """
    frame = lake.get_parquet(report.data.removeprefix(f"s3://{lake.bucket}/"))
    target = spec.target.name
    counts = frame[target].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(
            f"{spec.name}: cannot stratify a split with class counts {counts.to_dict()}; "
            "each of the two classes needs at least 2 valid rows"
        )
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[target])
    train, test = train.sort_index().reset_index(drop=True), test.sort_index().reset_index(drop=True)
    version = data_version(report.raw_sha256, spec.fingerprint(), seed, test_size)
    prefix = f"processed/{spec.name}/{version}"

    def balance(part: Any) -> dict[str, int]:
        return {str(k): int(v) for k, v in part[target].value_counts().sort_index().items()}

    manifest = SplitManifest(
        dataset=spec.name,
        data_version=version,
        schema_hash=spec.fingerprint(),
        raw_sha256=report.raw_sha256,
        seed=seed,
        test_size=test_size,
        rows=SplitRows(train=len(train), test=len(test)),
        class_balance=SplitClassBalance(train=balance(train), test=balance(test)),
        train=lake.put_parquet(f"{prefix}/train.parquet", train),
        test=lake.put_parquet(f"{prefix}/test.parquet", test),
    )
    manifest_key = f"{prefix}/manifest.json"
    lake.put_model(manifest_key, manifest)
    lake.put_model(current_split_key(spec), SplitPointer(manifest=manifest_key, data_version=version))
    return manifest


def current_split_manifest_key(spec: DatasetSpec, lake: Lake) -> str:
    """Key of the manifest of the current processed split (``current.json`` names it)."""
    return lake.get_model(current_split_key(spec), SplitPointer).manifest


def load_split(spec: DatasetSpec, lake: Lake, manifest_key: str | None = None) -> tuple[Any, Any, SplitManifest]:
    """Read the current (or a given) processed split: ``(train, test)`` DataFrames and the manifest."""
    manifest = lake.get_model(manifest_key or current_split_manifest_key(spec, lake), SplitManifest)
    strip = f"s3://{lake.bucket}/"
    train = lake.get_parquet(manifest.train.removeprefix(strip))
    test = lake.get_parquet(manifest.test.removeprefix(strip))
    return train, test, manifest
