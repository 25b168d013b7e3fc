"""Source readers: turn a dataset's source into a DataFrame with the spec's column names.

A reader is a function ``(spec, **options) -> DataFrame`` registered under a name with :func:`reader`;
a spec selects it with ``source.reader`` and passes ``source.options``. :func:`read_source` then keeps the
spec's columns and decodes coded values: a feature's or the target's ``codes`` (``{code: label}``, e.g.
``{1: sex_1}``) turn into labels, so the lake, the model and the API only ever see labels. A value that
is not a known code stays as it is, and the validation step quarantines it with a reason. Values are not
checked here: that is the validation step's job.

Relative file paths (the csv reader's ``path``) are resolved against the data directory,
``MLOPS_DATA_DIR`` (default: the repository's ``data/`` folder, see ``data/README.md``); manifests keep
the path as the spec wrote it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ml.settings import MLSettings
from ml.spec import DatasetSpec, FeatureSpec, SpecError, TargetSpec

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
    return decode_codes(frame[spec.columns], spec)


def decode_codes(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Replace coded values by their labels in every column whose spec has ``codes`` (unknown codes stay)."""
    frame = frame.copy()
    coded: list[FeatureSpec | TargetSpec] = [*spec.features, spec.target]
    for item in coded:
        if item.codes:
            frame[item.name] = frame[item.name].map(item.decode).astype(object)
    return frame


def resolve_data_path(path: str, base_dir: str | Path | None = None) -> str:
    """Where a source file is: URLs and absolute paths as given, relative paths under ``base_dir``.

    ``base_dir`` defaults to the data directory (``MLOPS_DATA_DIR``). A local file that does not exist
    raises :class:`FileNotFoundError` naming the resolved path and the data directory.
    """
    if "://" in path:
        return path
    root = Path(base_dir) if base_dir is not None else MLSettings().data_dir
    resolved = Path(path) if Path(path).is_absolute() else root / path
    if not resolved.is_file():
        raise FileNotFoundError(
            f"source file {resolved} does not exist (the spec's path {path!r}"
            + ("" if Path(path).is_absolute() else f" is relative to MLOPS_DATA_DIR={root}")
            + "); put the file there, or fix the path or MLOPS_DATA_DIR"
        )
    return str(resolved)


def _relabel_target(frame: pd.DataFrame, spec: DatasetSpec, mapping: dict[Any, str] | None) -> pd.DataFrame:
    if mapping:
        frame[spec.target.name] = frame[spec.target.name].map(lambda v: mapping.get(v, v))
    return frame


@reader("sklearn")
def read_sklearn(
    spec: DatasetSpec,
    loader: str,
    rename: dict[str, str] | None = None,
    target_map: dict[Any, str] | None = None,
    loader_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read one of the datasets bundled with scikit-learn (works offline), e.g. ``load_breast_cancer``.

    ``loader_options`` are passed to the loader (e.g. ``{scaled: false}`` for ``load_diabetes``); feature
    columns are renamed with ``rename``. A classification target's integer codes become the bundled class
    names (``target_names``) unless the spec's target has ``codes`` or ``target_map`` says otherwise; a
    regression target is kept as it is.
    """
    datasets = importlib.import_module("sklearn.datasets")
    load = getattr(datasets, loader, None)
    if load is None or not loader.startswith(("load_", "fetch_")):
        raise SpecError(f"dataset {spec.name!r}: sklearn.datasets has no loader {loader!r}")
    bunch = load(as_frame=True, **(loader_options or {}))
    frame = bunch.frame.rename(columns=rename or {})
    names = list(getattr(bunch, "target_names", []))
    codes = frame.pop("target")
    use_names = bool(names) and spec.task.is_classification and not target_map and not spec.target.codes
    frame[spec.target.name] = codes.map(dict(enumerate(names))) if use_names else codes
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
    """Read a CSV file: an ``s3://`` URL, an absolute path, or a path relative to the data directory.

    Relative paths are resolved against ``base_dir`` if given, else ``MLOPS_DATA_DIR``
    (:func:`resolve_data_path`).
    ``names`` supplies column names for header-less files, ``na_values`` the markers of missing values,
    ``target_map`` maps raw target values to class labels. Everything is read as text first so that the
    validation step, not the parser, decides what is a bad value.
    """
    location = resolve_data_path(path, base_dir)
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
