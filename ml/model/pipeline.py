"""The model pipeline: preprocessing by feature kind, then an estimator.

A ColumnTransformer imputes and scales numeric and integer features, imputes and one-hot encodes categorical ones
(ignoring unknown categories) and imputes booleans; columns are selected by position (see
:mod:`ml.model.matrix`).
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.spec import DatasetSpec, FeatureKind


def build_preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    """Preprocessing fitted inside the model, so the API takes raw values. Empty branches are left out."""
    positions = {f.name: i for i, f in enumerate(spec.features)}

    def cols(kind: FeatureKind) -> list[int]:
        return [positions[f.name] for f in spec.features_of(kind)]

    branches = []
    if numeric := sorted(cols(FeatureKind.NUMERIC) + cols(FeatureKind.INTEGER)):
        branches.append(
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if boolean := cols(FeatureKind.BOOLEAN):
        branches.append(("boolean", SimpleImputer(strategy="most_frequent"), boolean))
    if categorical := cols(FeatureKind.CATEGORICAL):
        branches.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=False)


def build_pipeline(spec: DatasetSpec, estimator: BaseEstimator) -> Pipeline:
    """The full model: preprocessing for ``spec`` followed by ``estimator``."""
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", estimator)])
