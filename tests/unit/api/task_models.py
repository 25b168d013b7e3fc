"""Real models of the other task types, trained on the shipped specs: wine (multi-class) and diabetes (regression).

The specs are the shipped ones, ``ml/datasets/wine.yaml`` and ``ml/datasets/diabetes.yaml`` (``get_spec``):
wine's classes are the cultivars barolo, grignolino and barbera, its 13 features all numeric; diabetes is
unscaled (the values as measured), ``age`` an integer feature (so the API must refuse 1.5), ``sex`` a
categorical feature coded 1/2 in the source with the labels sex_1/sex_2, the target without a unit. The data
is what the ETL validates: ``ml.readers.read_source`` (spec column names, codes decoded to labels), landed as
CSV text and parsed by ``ml.etl.validate.check_frame`` (``tests.datasets.validated_frame``). The models are
the ML library's own (``ml.model.build_pipeline`` over ``to_matrix``/``to_target``), saved by
``tests.datasets.save_model`` as ``ml.search_finish.finish_search`` saves them: wine a logistic regression (and a
random forest as its second version), diabetes a ridge regression.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.model import to_matrix, to_target
from ml.spec import DatasetSpec, FeatureKind, FeatureSpec, get_spec
from tests.datasets import save_model, validated_frame


def wine_spec() -> DatasetSpec:
    """The shipped wine spec: three cultivars from 13 chemical measurements."""
    return get_spec("wine")


def diabetes_spec() -> DatasetSpec:
    """The shipped diabetes spec: disease progression from ten unscaled baseline measurements."""
    return get_spec("diabetes")


@cache
def _validated(name: str) -> pd.DataFrame:
    return validated_frame(get_spec(name))


def wine_frame() -> pd.DataFrame:
    """Wine's validated rows (all 178): the spec's columns, the cultivar as its label."""
    return _validated("wine").copy()


def diabetes_frame() -> pd.DataFrame:
    """Diabetes' validated rows (all 442): the spec's columns, ``sex`` as its label, ``age`` a whole number."""
    return _validated("diabetes").copy()


def wine_data() -> tuple[np.ndarray, np.ndarray]:
    """Wine's model input (``to_matrix``: float64, spec order) and target (indexes of ``spec.target.labels``)."""
    spec, frame = wine_spec(), wine_frame()
    return to_matrix(frame, spec), to_target(frame, spec)


def diabetes_data() -> tuple[np.ndarray, np.ndarray]:
    """Diabetes' model input (``to_matrix``: an ``object`` array, ``sex`` as text) and target values."""
    spec, frame = diabetes_spec(), diabetes_frame()
    return to_matrix(frame, spec), to_target(frame, spec)


def _json_value(feature: FeatureSpec, value: Any) -> Any:
    if pd.isna(value):
        return None
    if feature.kind is FeatureKind.INTEGER:
        return int(value)
    if feature.kind is FeatureKind.BOOLEAN:
        return bool(value)
    if feature.kind is FeatureKind.CATEGORICAL:
        return str(value)
    return float(value)


def records(spec: DatasetSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as JSON clients send them: integers as ints, numbers as floats, categories as labels."""
    return [
        {f.name: _json_value(f, value) for f, value in zip(spec.features, row, strict=True)}
        for row in frame[spec.feature_names].itertuples(index=False)
    ]


def wine_record() -> dict[str, Any]:
    """Wine's example record (``spec.example_record()``)."""
    return wine_spec().example_record()


def diabetes_record() -> dict[str, Any]:
    """Diabetes' example record (``spec.example_record()``: ``age`` a JSON integer, ``sex`` a label)."""
    return diabetes_spec().example_record()


def save_task_models(root: Path) -> dict[str, Path]:
    """Wine (logistic regression, and a random forest as its second version) and diabetes (ridge)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge

    wine, diabetes = wine_spec(), diabetes_spec()
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    return {
        "wine": save_model(root / "wine", wine, wine_frame(), LogisticRegression(max_iter=2000), wine.metric.name,
                           0.97),
        "wine_rf": save_model(root / "wine_rf", wine, wine_frame(), forest, wine.metric.name, 0.95),
        "diabetes": save_model(root / "diabetes", diabetes, diabetes_frame(), Ridge(alpha=0.1),
                               diabetes.metric.name, 54.0),
    }  # fmt: skip
