"""Tiny real models of each task type, saved as MLflow does: wine (multi-class) and diabetes (regression).

The specs are scikit-learn's wine and diabetes data sets described as the project's specs describe theirs
(wine's magnesium is an integer feature, so the API must refuse 1.5). Models are the shape the ML library
trains: ``Pipeline([preprocess: ColumnTransformer(impute, scale), model: estimator])`` over positional
columns, classifiers' classes the indexes of ``spec.target.labels``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ml.spec import DatasetSpec, parse_spec

WINE_FEATURES = [
    ("alcohol", "numeric", 14.23), ("malic_acid", "numeric", 1.71), ("ash", "numeric", 2.43),
    ("alcalinity_of_ash", "numeric", 15.6), ("magnesium", "integer", 127), ("total_phenols", "numeric", 2.8),
    ("flavanoids", "numeric", 3.06), ("nonflavanoid_phenols", "numeric", 0.28), ("proanthocyanins", "numeric", 2.29),
    ("color_intensity", "numeric", 5.64), ("hue", "numeric", 1.04), ("od280_od315", "numeric", 3.92),
    ("proline", "numeric", 1065.0),
]  # fmt: skip
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def wine_spec() -> DatasetSpec:
    """A multi-class spec: three cultivars, 13 chemical measurements (magnesium an integer)."""
    features = [
        {"name": name, "kind": kind, "title": name.replace("_", " ").title(), "description": f"The wine's {name}.",
         "minimum": 0, "maximum": 2000, "example": example}
        for name, kind, example in WINE_FEATURES
    ]  # fmt: skip
    return parse_spec(
        {
            "name": "wine",
            "title": "Wine recognition",
            "description": "Which of three cultivars a wine comes from, from its chemical analysis.",
            "task": "multiclass",
            "source": {"reader": "sklearn", "options": {"loader": "load_wine"}},
            "target": {
                "name": "cultivar",
                "description": "The cultivar.",
                "classes": {0: "class_0", 1: "class_1", 2: "class_2"},
            },
            "features": features,
            "training": {"metric": "f1_macro"},
        }
    )


def wine_record() -> dict[str, float | int]:
    """Wine's example record as JSON clients send it (magnesium, an integer feature, as a JSON integer)."""
    return {f.name: int(f.example) if f.kind.value == "integer" else f.example for f in wine_spec().features}  # type: ignore[misc, arg-type]


def diabetes_record() -> dict[str, float]:
    """Diabetes' example record."""
    return {f.name: float(f.example) for f in diabetes_spec().features}  # type: ignore[arg-type]


def diabetes_spec() -> DatasetSpec:
    """A regression spec: disease progression one year after baseline, from ten standardised measurements."""
    features = [
        {"name": name, "kind": "numeric", "description": f"Baseline {name} (standardised).", "minimum": -1,
         "maximum": 1, "example": 0.03}
        for name in DIABETES_FEATURES
    ]  # fmt: skip
    return parse_spec(
        {
            "name": "diabetes",
            "title": "Diabetes progression",
            "description": "A quantitative measure of disease progression one year after baseline.",
            "task": "regression",
            "source": {"reader": "sklearn", "options": {"loader": "load_diabetes"}},
            "target": {
                "name": "progression",
                "description": "Disease progression.",
                "unit": "points",
                "minimum": 0,
                "maximum": 400,
            },
            "features": features,
        }
    )


def wine_data() -> tuple[np.ndarray, np.ndarray]:
    """Wine's features (spec order) and encoded classes 0..2."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    x = np.array(bunch.data, dtype=np.float64)
    x[:, 4] = np.round(x[:, 4])
    return x, np.asarray(bunch.target, dtype=int)


def diabetes_data() -> tuple[np.ndarray, np.ndarray]:
    """Diabetes' features and target."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return np.array(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64)


def fit_pipeline(spec: DatasetSpec, estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """The ML library's pipeline shape over every (numeric or integer) column, fitted."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([("numeric", numeric, list(range(len(spec.features))))], remainder="drop")
    return Pipeline([("preprocess", preprocess), ("model", estimator)]).fit(x, y)


def save_fitted(directory: Path, spec: DatasetSpec, model: Any, metric: str, score: float) -> Path:
    """Save a fitted pipeline with the metadata ``ml.search_finish.finish_search`` logs."""
    import mlflow.sklearn

    from ml.search import skops_trusted_types

    mlflow.sklearn.save_model(
        model,
        str(directory),
        serialization_format="skops",
        skops_trusted_types=skops_trusted_types(model),
        metadata={
            "dataset_spec": json.loads(spec.to_json()),
            "data_version": f"v-test-{directory.name}",
            "schema_hash": spec.fingerprint(),
            "metric": metric,
            "cv_score": score,
            "test_metrics": {metric: score},
            "family": type(model.steps[-1][1]).__name__,
        },
    )
    return directory


def save_task_models(root: Path) -> dict[str, Path]:
    """Wine (logistic regression, and a random forest as its second version) and diabetes (ridge)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge

    wine, diabetes = wine_spec(), diabetes_spec()
    wx, wy = wine_data()
    dx, dy = diabetes_data()
    return {
        "wine": save_fitted(root / "wine", wine, fit_pipeline(wine, LogisticRegression(max_iter=2000), wx, wy),
                            "f1_macro", 0.97),
        "wine_rf": save_fitted(root / "wine_rf", wine, fit_pipeline(wine, RandomForestClassifier(
            n_estimators=10, random_state=0), wx, wy), "f1_macro", 0.95),
        "diabetes": save_fitted(root / "diabetes", diabetes, fit_pipeline(diabetes, Ridge(alpha=0.1), dx, dy),
                                "rmse", 54.0),
    }  # fmt: skip
