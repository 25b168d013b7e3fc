"""Validation and the split per task: integer features, numeric regression targets, strata by class or quantile."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.etl import extract, split, validate
from ml.etl.split import load_split, strata_of
from ml.etl.validate import REASON_COLUMN, check_frame
from ml.lake import Lake
from ml.settings import MLSettings
from ml.spec import get_spec
from ml.tasks import TaskType

DIABETES = get_spec("diabetes")
WINE = get_spec("wine")


def diabetes_rows(**changes: dict[int, str]) -> pd.DataFrame:
    """Ten valid diabetes rows as landed text, with ``changes`` ({column: {row: text}}) applied."""
    base = {"age": "50", "sex": "sex_1", "bmi": "25.0", "bp": "90", "s1": "180", "s2": "110", "s3": "50",
            "s4": "4", "s5": "4.6", "s6": "90", "disease_progression": "150"}  # fmt: skip
    frame = pd.DataFrame([base | {"age": str(30 + i)} for i in range(10)])
    for column, cells in changes.items():
        for row, text in cells.items():
            frame.loc[row, column] = text
    return frame


def test_integer_and_regression_target_failures_are_quarantined_with_readable_reasons() -> None:
    raw = diabetes_rows(
        age={0: "1.5", 1: "old", 2: "200"},
        disease_progression={3: "lots", 4: "", 5: "900"},
    )
    valid, quarantined = check_frame(raw, DIABETES)
    reasons = dict(zip(quarantined["_source_row"], quarantined[REASON_COLUMN], strict=True))
    assert reasons == {
        1: "age: '1.5' is not a whole number",
        2: "age: 'old' is not a number",
        3: "age: 200 is outside [0.0, 120.0]",
        4: "disease_progression: 'lots' is not a number",
        5: "disease_progression: missing value (not allowed for this field)",
        6: "disease_progression: 900.0 is outside [0.0, 700.0]",
    }
    assert len(valid) == 4
    assert str(valid["age"].dtype) == "Int64" and valid["disease_progression"].dtype == float


def test_a_whole_number_written_as_a_float_is_an_integer() -> None:
    valid, quarantined = check_frame(diabetes_rows(age={0: "59.0"}), DIABETES)
    assert quarantined.empty and valid.loc[0, "age"] == 59


def test_classification_strata_need_two_rows_of_every_class() -> None:
    frame = pd.DataFrame({"cultivar": ["barolo"] * 5 + ["grignolino"] * 5 + ["barbera"]})
    with pytest.raises(ValueError, match=r"class\(es\) \{'barbera': 1\} have fewer than 2 valid rows.*add data"):
        strata_of(frame, WINE, 0.2)
    absent = frame[frame["cultivar"] != "barbera"]
    with pytest.raises(ValueError, match=r"'barbera': 0"):
        strata_of(absent, WINE, 0.2)


def test_regression_strata_are_quantile_bins_or_none_when_too_few_rows() -> None:
    frame = pd.DataFrame({"disease_progression": [float(v) for v in range(100)]})
    strata = strata_of(frame, DIABETES, 0.2)
    assert strata is not None and strata.nunique() == 5 and strata.value_counts().min() == 20
    assert strata_of(frame.head(4), DIABETES, 0.2) is None  # one test row: nothing to stratify by


def land(spec, lake: Lake, settings: MLSettings):
    extract(spec, lake)
    return split(spec, lake, settings.seed, settings.test_size, validate(spec, lake, settings.max_invalid_fraction))


def test_a_regression_split_summarises_the_target_instead_of_class_counts(lake: Lake, ml_env: MLSettings) -> None:
    manifest = land(DIABETES, lake, ml_env)
    assert manifest.class_balance is None and manifest.target_summary is not None
    train, test = manifest.target_summary.train, manifest.target_summary.test
    assert (train.count, test.count) == (manifest.rows.train, manifest.rows.test) == (353, 89)
    assert abs(train.median - test.median) < 15  # stratified by quantile bins
    assert 25 <= test.min <= test.q25 <= test.median <= test.q75 <= test.max <= 346
    assert "class_balance" not in lake.get_json(f"processed/diabetes/{manifest.data_version}/manifest.json")
    _, loaded_test, _ = load_split(DIABETES, lake)
    assert loaded_test["disease_progression"].dtype == float


def test_a_multiclass_split_keeps_every_class_in_proportion(lake: Lake, ml_env: MLSettings) -> None:
    manifest = land(WINE, lake, ml_env)
    assert WINE.task is TaskType.MULTICLASS and manifest.target_summary is None
    assert manifest.class_balance is not None
    assert manifest.class_balance.test == {"barbera": 10, "barolo": 12, "grignolino": 14}
