"""Split: a deterministic, seeded, stratified train/test split of the validated rows, written as Parquet.

Classification is stratified by class, regression by quantile bins of the target.

No imputation, scaling or encoding happens here: those are fitted inside the model pipeline
(:mod:`ml.model`), so the prediction API can take raw feature values.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from ml.contracts import (
    SplitClassBalance,
    SplitManifest,
    SplitPointer,
    SplitRows,
    SplitTargetSummary,
    TargetSummary,
    ValidationReport,
)
from ml.lake import Lake
from ml.spec import DatasetSpec
from ml.tasks import TaskType


def current_split_key(spec: DatasetSpec) -> str:
    """Key of the pointer to the current processed split of a dataset."""
    return f"processed/{spec.name}/current.json"


def data_version(raw_sha256: str, schema_hash: str, seed: int, test_size: float) -> str:
    """Identify a processed split by everything it depends on: raw bytes, schema, seed and test size."""
    key = f"{raw_sha256}|{schema_hash}|{seed}|{test_size}"
    return "v-" + hashlib.sha256(key.encode()).hexdigest()[:12]


MAX_BINS = 5  # a regression target is stratified by up to this many quantile bins


def split(spec: DatasetSpec, lake: Lake, seed: int, test_size: float, report: ValidationReport) -> SplitManifest:
    """Split the validated rows named by a validation ``report`` into train and test Parquet files.

    Classification is stratified by class (every class of the spec needs at least 2 valid rows); regression
    by quantile bins of the target (up to :data:`MAX_BINS`; none when there are too few rows). Writes
    ``processed/<dataset>/<version>/{train,test}.parquet`` and ``manifest.json`` (row counts, class balance or
    target summary, schema hash, data version), then moves ``current.json`` to it. Returns the manifest.
    """
    frame = lake.get_parquet(report.data.removeprefix(f"s3://{lake.bucket}/"))
    strata = strata_of(frame, spec, test_size)
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=strata)
    train, test = train.sort_index().reset_index(drop=True), test.sort_index().reset_index(drop=True)
    version = data_version(report.raw_sha256, spec.fingerprint(), seed, test_size)
    prefix = f"processed/{spec.name}/{version}"
    target = spec.target.name
    regression = spec.task is TaskType.REGRESSION
    manifest = SplitManifest(
        dataset=spec.name,
        data_version=version,
        schema_hash=spec.fingerprint(),
        raw_sha256=report.raw_sha256,
        seed=seed,
        test_size=test_size,
        rows=SplitRows(train=len(train), test=len(test)),
        class_balance=None
        if regression
        else SplitClassBalance(train=_balance(train[target]), test=_balance(test[target])),
        train=lake.put_parquet(f"{prefix}/train.parquet", train),
        test=lake.put_parquet(f"{prefix}/test.parquet", test),
        target_summary=SplitTargetSummary(train=_summary(train[target]), test=_summary(test[target]))
        if regression
        else None,
    )
    manifest_key = f"{prefix}/manifest.json"
    lake.put_model(manifest_key, manifest)
    lake.put_model(current_split_key(spec), SplitPointer(manifest=manifest_key, data_version=version))
    return manifest


def strata_of(frame: pd.DataFrame, spec: DatasetSpec, test_size: float) -> pd.Series | None:
    """What the split stratifies by: the class, or quantile bins of a regression target (None: no strata).

    Raises ``ValueError`` naming the classes when a class of the spec has fewer than 2 valid rows.
    """
    target = frame[spec.target.name]
    if spec.task is TaskType.REGRESSION:
        return _quantile_bins(target.astype(float), test_size)
    counts = {label: int((target == label).sum()) for label in spec.target.labels}
    scarce = {label: n for label, n in counts.items() if n < 2}
    if scarce:
        raise ValueError(
            f"{spec.name}: cannot stratify the split: class(es) {scarce} have fewer than 2 valid rows (counts: "
            f"{counts}); every class in target.classes needs at least 2 rows: add data or remove the class"
        )
    return target


def _quantile_bins(values: pd.Series, test_size: float) -> pd.Series | None:
    """Up to MAX_BINS quantile bins with at least 2 rows each and no more bins than either part has rows."""
    n_test = math.ceil(len(values) * test_size)
    for bins in range(min(MAX_BINS, n_test, len(values) - n_test), 1, -1):
        strata = pd.qcut(values, q=bins, labels=False, duplicates="drop")
        counts = strata.value_counts()
        if len(counts) >= 2 and counts.min() >= 2:
            return strata
    return None


def _balance(labels: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}


def _summary(values: pd.Series) -> TargetSummary:
    v = values.astype(float)
    q25, median, q75 = (float(q) for q in v.quantile([0.25, 0.5, 0.75]))
    std = float(v.std()) if len(v) > 1 else 0.0
    return TargetSummary(
        count=len(v),
        mean=float(v.mean()),
        std=std,
        min=float(v.min()),
        q25=q25,
        median=median,
        q75=q75,
        max=float(v.max()),
    )


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
