"""Split: a deterministic, seeded, stratified train/test split of the validated rows, written as Parquet.

No imputation, scaling or encoding happens here: those are fitted inside the model pipeline
(:mod:`ml.model`), so the prediction API can take raw feature values.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sklearn.model_selection import train_test_split

from ml.lake import Lake
from ml.spec import DatasetSpec


def current_split_key(spec: DatasetSpec) -> str:
    """Key of the pointer to the current processed split of a dataset."""
    return f"processed/{spec.name}/current.json"


def data_version(raw_sha256: str, schema_hash: str, seed: int, test_size: float) -> str:
    """Identify a processed split by everything it depends on: raw bytes, schema, seed and test size."""
    key = f"{raw_sha256}|{schema_hash}|{seed}|{test_size}"
    return "v-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def split(spec: DatasetSpec, lake: Lake, seed: int, test_size: float, report: dict[str, Any]) -> dict[str, Any]:
    """Split the validated rows named by a validation ``report`` into train and test Parquet files.

    Writes ``processed/<dataset>/<version>/{train,test}.parquet`` and ``manifest.json`` (row counts, class
    balance, schema hash, data version), then moves ``current.json`` to it. Returns the manifest.
    """
    frame = lake.get_parquet(report["data"].removeprefix(f"s3://{lake.bucket}/"))
    target = spec.target.name
    counts = frame[target].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(
            f"{spec.name}: cannot stratify a split with class counts {counts.to_dict()}; "
            "each of the two classes needs at least 2 valid rows"
        )
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[target])
    train, test = train.sort_index().reset_index(drop=True), test.sort_index().reset_index(drop=True)
    version = data_version(report["raw_sha256"], spec.fingerprint(), seed, test_size)
    prefix = f"processed/{spec.name}/{version}"

    def balance(part: Any) -> dict[str, int]:
        return {str(k): int(v) for k, v in part[target].value_counts().sort_index().items()}

    manifest = {
        "dataset": spec.name,
        "data_version": version,
        "schema_hash": spec.fingerprint(),
        "raw_sha256": report["raw_sha256"],
        "seed": seed,
        "test_size": test_size,
        "rows": {"train": len(train), "test": len(test)},
        "class_balance": {"train": balance(train), "test": balance(test)},
        "train": lake.put_parquet(f"{prefix}/train.parquet", train),
        "test": lake.put_parquet(f"{prefix}/test.parquet", test),
    }
    lake.put_json(f"{prefix}/manifest.json", manifest)
    lake.put_json(current_split_key(spec), {"manifest": f"{prefix}/manifest.json", "data_version": version})
    return manifest


def load_split(spec: DatasetSpec, lake: Lake, manifest_key: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Read the current (or a given) processed split: ``(train, test, manifest)`` DataFrames."""
    key = manifest_key or lake.get_json(current_split_key(spec))["manifest"]
    manifest = lake.get_json(key)
    strip = f"s3://{lake.bucket}/"
    train = lake.get_parquet(manifest["train"].removeprefix(strip))
    test = lake.get_parquet(manifest["test"].removeprefix(strip))
    return train, test, manifest
