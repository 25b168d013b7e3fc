"""The model's input contract: a 2-D NumPy array with one column per spec feature, in spec order.

Training, evaluation and the prediction API all build the model input with :func:`to_matrix` (or, in
the API, with the same rules on plain Python values), so the fitted pipeline never sees anything else:

* numeric and integer features: float64, missing = NaN;
* boolean features: 1.0 / 0.0, missing = NaN;
* categorical features: ``str``, missing = NaN.

The array is float64 when the spec has no categorical feature, otherwise ``object``. Working on arrays
with positional columns (rather than DataFrames with named columns) keeps single-record prediction fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.spec import DatasetSpec, FeatureKind


def matrix_dtype(spec: DatasetSpec) -> type:
    """``float`` when every feature is numeric or boolean, else ``object``."""
    return object if spec.features_of(FeatureKind.CATEGORICAL) else float


def to_matrix(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Convert typed rows (as validated) into the model input array."""
    columns = []
    for feature in spec.features:
        values = frame[feature.name]
        if feature.kind is FeatureKind.CATEGORICAL:
            column = np.array([v if isinstance(v, str) else np.nan for v in values], dtype=object)
        elif feature.kind is FeatureKind.BOOLEAN:
            column = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        else:
            column = pd.to_numeric(values, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        columns.append(column)
    return np.column_stack(columns).astype(matrix_dtype(spec), copy=False)


def to_target(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Encode the target column: a class's index in ``spec.target.labels``, or a regression's float value.

    Binary: 1 is the positive class, 0 the other. A label that is not a class of the spec raises
    ``ValueError`` (validation quarantines such rows, so this means the data bypassed it).
    """
    values = frame[spec.target.name]
    if not spec.task.is_classification:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=float)
    index = {label: i for i, label in enumerate(spec.target.labels)}
    unknown = sorted({str(v) for v in values if v not in index})
    if unknown:
        raise ValueError(
            f"{spec.name}: target values {unknown[:5]} are not classes of the spec {list(index)}; "
            "validate the data first (python -m ml validate) or add the classes to target.classes"
        )
    return values.map(index).to_numpy(dtype=int)


def records_to_frame(records: list[dict[str, Any]], spec: DatasetSpec) -> pd.DataFrame:
    """Records (dicts keyed by feature name) to a DataFrame with the spec's feature columns, in order."""
    return pd.DataFrame.from_records(records, columns=spec.feature_names)
