"""Test data: the shipped specs' data as the ETL validates it, a generated mixed-type dataset and its spec,
and models fitted and saved as the search saves them.

The mixed spec ("loan_demo") has what breast cancer lacks: categorical, boolean and nullable features,
so a model trained on it needs another request schema (and an ``object`` input array). Both the unit
tests (models saved with ``mlflow.sklearn.save_model``) and the integration tests (the real pipeline:
CSV reader, validation, split, search, registry gate) of the API and of the ML library use these
definitions; the ML tests also prove that adding a dataset takes a spec and nothing else.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.spec import DatasetSpec, get_spec, parse_spec

MIXED_SPEC: dict[str, Any] = {
    "name": "loan_demo",
    "title": "Generated loan defaults",
    "description": "Synthetic loan applicants with numeric, categorical and boolean features and missing values.",
    "source": {"reader": "csv", "options": {"path": "PLACEHOLDER", "na_values": ["?"]}},
    "target": {"name": "defaulted", "description": "Whether the loan defaulted.", "classes": ["no", "yes"],
               "positive_class": "yes"},
    "features": [
        {"name": "income", "kind": "numeric", "description": "Net monthly income.", "unit": "EUR",
         "minimum": 0, "maximum": 100000, "example": 3200.0},
        {"name": "age", "kind": "numeric", "description": "Age of the applicant.", "unit": "years",
         "minimum": 18, "maximum": 110, "nullable": True, "example": 41},
        {"name": "employment", "kind": "categorical", "description": "Employment status.",
         "categories": ["employed", "self_employed", "unemployed", "retired"], "example": "employed"},
        {"name": "region", "kind": "categorical", "description": "Region of residence.",
         "categories": ["north", "south", "east", "west"], "nullable": True, "example": "north"},
        {"name": "has_guarantor", "kind": "boolean", "description": "A guarantor signed the loan.",
         "nullable": True, "example": False},
        {"name": "owns_home", "kind": "boolean", "description": "The applicant owns a home.", "example": True},
    ],
}  # fmt: skip

MIXED_RECORD = {
    "income": 3200.0,
    "age": 41,
    "employment": "employed",
    "region": "north",
    "has_guarantor": False,
    "owns_home": True,
}


def mixed_spec(csv_path: Path | str = "loan_demo.csv") -> DatasetSpec:
    """The mixed spec, reading its CSV from ``csv_path``."""
    spec = json.loads(json.dumps(MIXED_SPEC))
    spec["source"]["options"]["path"] = str(csv_path)
    return parse_spec(spec, origin="tests/datasets.py")


def mixed_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Rows as a CSV would hold them (text booleans, '?' for missing); default depends clearly on the features."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.gamma(3.0, 1200.0, rows), 2)
    age = rng.integers(18, 90, rows).astype(float)
    employment = rng.choice(["employed", "self_employed", "unemployed", "retired"], rows, p=[0.55, 0.2, 0.15, 0.1])
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    guarantor = rng.random(rows) < 0.4
    owns_home = rng.random(rows) < 0.5
    risk = (income < 2500) * 2.0 + (employment == "unemployed") * 2.5 - guarantor * 1.5 - owns_home * 1.0
    defaulted = np.where(risk + rng.normal(0, 0.3, rows) > 1.0, "yes", "no")
    frame = pd.DataFrame(
        {
            "income": income,
            "age": age,
            "employment": employment,
            "region": region,
            "has_guarantor": np.where(guarantor, "true", "false").astype(object),
            "owns_home": np.where(owns_home, "true", "false"),
            "defaulted": defaulted,
        }
    )
    frame.loc[rng.random(rows) < 0.05, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "region"] = "?"
    frame.loc[rng.random(rows) < 0.05, "has_guarantor"] = "?"
    return frame


def typed_mixed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV-like frame with real types (what the validation step produces)."""
    typed = frame.copy()
    typed["region"] = typed["region"].replace("?", np.nan)
    typed["has_guarantor"] = typed["has_guarantor"].map({"true": True, "false": False, "?": np.nan})
    typed["owns_home"] = typed["owns_home"].map({"true": True, "false": False})
    return typed


def breast_cancer_frame() -> tuple[DatasetSpec, pd.DataFrame]:
    """The shipped spec and its data with the spec's column names."""
    from sklearn.datasets import load_breast_cancer

    spec = get_spec("breast_cancer")
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=spec.source.options["rename"])
    frame[spec.target.name] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return spec, frame


def validated_frame(spec: DatasetSpec) -> pd.DataFrame:
    """The spec's data as the ETL validates it: read by its reader (spec column names, codes decoded to
    labels), landed as CSV text, then parsed and checked by ``ml.etl.validate.check_frame``.

    Raises ``AssertionError`` if any row is quarantined: the shipped data sets have no bad rows.
    """
    from ml.etl.validate import REASON_COLUMN, check_frame
    from ml.readers import read_source

    raw = pd.read_csv(io.StringIO(read_source(spec).to_csv(index=False)), dtype=str, keep_default_na=True)
    valid, quarantined = check_frame(raw, spec)
    if len(quarantined):
        reasons = list(quarantined[REASON_COLUMN].head(3))
        raise AssertionError(f"{spec.name}: {len(quarantined)} rows fail validation, e.g. {reasons}")
    return valid


def breast_cancer_record() -> dict[str, Any]:
    """The spec's example record (valid)."""
    return get_spec("breast_cancer").example_record()


def save_model(
    directory: Path,
    spec: DatasetSpec,
    frame: pd.DataFrame,
    estimator: Any,
    metric: str = "f1",
    score: float = 0.9,
    test_metrics: dict[str, float] | None = None,
) -> Path:
    """Fit ``estimator`` in the spec's pipeline and save it as MLflow does in ``ml.search_finish.finish_search``.

    The metadata says the model scored ``score`` in ``metric`` (cross-validation), and ``test_metrics``
    (default: ``{metric: score}``) on the test set; the data version is ``v-test-<directory name>``.
    """
    import mlflow.sklearn

    from ml.model import build_pipeline, to_matrix, to_target
    from ml.search import skops_trusted_types

    model = build_pipeline(spec, estimator).fit(to_matrix(frame, spec), to_target(frame, spec))
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
            "test_metrics": {metric: score} if test_metrics is None else test_metrics,
            "family": type(estimator).__name__,
        },
    )
    return directory


def write_dataset(directory: Path, frame: pd.DataFrame | None = None) -> DatasetSpec:
    """Write the mixed dataset's CSV (generated unless given) into ``directory``; return its spec.

    Nothing in the library knows this dataset: a spec and a CSV are all it takes to add one.
    """
    csv_path = directory / "loan_demo.csv"
    (mixed_frame() if frame is None else frame).to_csv(csv_path, index=False)
    return mixed_spec(csv_path)
