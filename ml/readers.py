"""Source readers: turn a dataset's source into a DataFrame with the spec's column names.

A reader is a function ``(spec, **options) -> DataFrame`` registered under a name with :func:`reader`;
a spec selects it with ``source.reader`` and passes ``source.options``. The frame it returns is landed
as-is in the raw zone, so it must hold the spec's feature and target columns with readable names and
the target as class labels (not codes). Values are not checked here: that is the validation step's job.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ml.spec import DatasetSpec, SpecError

Reader = Callable[..., pd.DataFrame]
READERS: dict[str, Reader] = {}


def reader(name: str) -> Callable[[Reader], Reader]:
    """Register a reader function under ``name`` (the value of ``source.reader`` in a spec)."""

    def register(func: Reader) -> Reader:
        READERS[name] = func
        return func

    return register


def read_source(spec: DatasetSpec) -> pd.DataFrame:
    """Read a dataset's source with the reader its spec names and return the spec's columns, in order."""
    try:
        func = READERS[spec.source.reader]
    except KeyError:
        known = ", ".join(sorted(READERS))
        raise SpecError(
            f"dataset {spec.name!r} names reader {spec.source.reader!r}, which does not exist "
            f"(known readers: {known}); register one with @ml.readers.reader({spec.source.reader!r})"
        ) from None
    try:
        frame = func(spec, **spec.source.options)
    except TypeError as exc:
        raise SpecError(f"dataset {spec.name!r}: bad options for reader {spec.source.reader!r}: {exc}") from None
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise SpecError(
            f"dataset {spec.name!r}: the source has no column(s) {missing}; it has {list(frame.columns)}. "
            "Fix the spec's feature names or the reader's 'rename' option."
        )
    return frame[spec.columns]


def _relabel_target(frame: pd.DataFrame, spec: DatasetSpec, mapping: dict[Any, str] | None) -> pd.DataFrame:
    if mapping:
        frame[spec.target.name] = frame[spec.target.name].map(lambda v: mapping.get(v, v))
    return frame


@reader("sklearn")
def read_sklearn(
    spec: DatasetSpec, loader: str, rename: dict[str, str] | None = None, target_map: dict[Any, str] | None = None
) -> pd.DataFrame:
    """Read one of the datasets bundled with scikit-learn (works offline), e.g. ``load_breast_cancer``.

    Feature columns are renamed with ``rename``; integer target codes become the bundled class names
    (``target_names``) unless ``target_map`` says otherwise.
    """
    datasets = importlib.import_module("sklearn.datasets")
    try:
        bunch = getattr(datasets, loader)(as_frame=True)
    except AttributeError:
        raise SpecError(f"dataset {spec.name!r}: sklearn.datasets has no loader {loader!r}") from None
    frame = bunch.frame.rename(columns=rename or {})
    names = list(getattr(bunch, "target_names", []))
    codes = frame.pop("target")
    frame[spec.target.name] = codes.map(dict(enumerate(names))) if names and not target_map else codes
    return _relabel_target(frame, spec, target_map)


@reader("csv")
def read_csv(
    spec: DatasetSpec,
    path: str,
    names: list[str] | None = None,
    na_values: list[str] | None = None,
    rename: dict[str, str] | None = None,
    target_map: dict[Any, str] | None = None,
    base_dir: str | None = None,
) -> pd.DataFrame:
    """Read a CSV file (a local path, relative to ``base_dir`` if given, or an ``s3://`` URL).

    ``names`` supplies column names for header-less files, ``na_values`` the markers of missing values,
    ``target_map`` maps raw target values to class labels. Everything is read as text first so that the
    validation step, not the parser, decides what is a bad value.
    """
    location = path if "://" in path or base_dir is None else str(Path(base_dir) / path)
    frame = pd.read_csv(
        location,
        header=None if names else "infer",
        names=names,
        na_values=na_values,
        keep_default_na=True,
        dtype=str,
        skipinitialspace=True,
    )
    frame = frame.rename(columns=rename or {})
    if target_map:
        lookup = {str(k): v for k, v in target_map.items()}
        frame[spec.target.name] = frame[spec.target.name].map(lambda v: lookup.get(str(v), v))
    return frame
