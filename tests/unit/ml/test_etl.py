import io

import pandas as pd
import pytest

from ml.etl import ValidationFailedError, extract, split, validate
from ml.etl.split import load_split
from ml.etl.validate import REASON_COLUMN, check_frame
from ml.lake import Lake
from ml.settings import MLSettings
from ml.spec import get_spec
from tests.datasets import mixed_frame, write_dataset


def test_extract_lands_exactly_what_was_read_with_a_manifest(lake: Lake) -> None:
    spec = get_spec("breast_cancer")
    manifest = extract(spec, lake)
    landed = lake.get_bytes(manifest.key)
    frame = pd.read_csv(io.BytesIO(landed))
    assert manifest.rows == len(frame) == 569
    assert list(frame.columns) == spec.columns
    assert manifest.source["reader"] == "sklearn"
    # content-addressed and idempotent: a second extract keeps the same manifest and keys
    again = extract(spec, lake)
    assert again == manifest
    assert len(lake.list_keys("raw/breast_cancer/")) == 3  # data.csv, manifest.json, latest.json


def test_validate_and_split_breast_cancer(lake: Lake, ml_env: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    extract(spec, lake)
    report = validate(spec, lake, ml_env.max_invalid_fraction)
    assert report.rows_in == report.rows_valid == 569
    assert report.rows_quarantined == 0 and report.quarantine is None
    manifest = split(spec, lake, seed=42, test_size=0.2, report=report)
    assert (manifest.rows.train, manifest.rows.test) == (455, 114)
    assert manifest.class_balance.test == {"benign": 72, "malignant": 42}
    assert manifest.schema_hash == spec.fingerprint()
    train, test, _ = load_split(spec, lake)
    assert train["mean_radius"].dtype == float and len(test) == 114


def test_split_is_deterministic_and_stratified(lake: Lake, ml_env: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    extract(spec, lake)
    report = validate(spec, lake, ml_env.max_invalid_fraction)
    first = split(spec, lake, seed=7, test_size=0.25, report=report)
    test_a = load_split(spec, lake)[1]
    second = split(spec, lake, seed=7, test_size=0.25, report=report)
    test_b = load_split(spec, lake)[1]
    assert first.data_version == second.data_version
    pd.testing.assert_frame_equal(test_a, test_b)
    other = split(spec, lake, seed=8, test_size=0.25, report=report)
    assert other.data_version != first.data_version
    balance = first.class_balance
    ratio = {k: v / sum(balance.train.values()) for k, v in balance.train.items()}
    test_ratio = {k: v / sum(balance.test.values()) for k, v in balance.test.items()}
    for label in ratio:
        assert abs(ratio[label] - test_ratio[label]) < 0.02


def _bad_rows() -> pd.DataFrame:
    frame = mixed_frame(rows=60, seed=3).astype(object)
    frame.loc[0, "income"] = "lots"  # not a number
    frame.loc[1, "income"] = 999999  # out of range
    frame.loc[2, "employment"] = "astronaut"  # unknown category
    frame.loc[3, "income"] = None  # missing, not allowed
    frame.loc[4, "defaulted"] = "maybe"  # bad target
    frame.loc[5, "has_guarantor"] = "perhaps"  # not a boolean
    frame.loc[7] = frame.loc[6]  # duplicate row
    return frame


def test_quarantine_names_every_reason_and_drops_nothing(tmp_path, lake: Lake) -> None:
    spec = write_dataset(tmp_path, _bad_rows())
    extract(spec, lake)
    report = validate(spec, lake, max_invalid_fraction=0.5)
    assert report.rows_in == 60
    assert report.rows_valid + report.rows_quarantined == 60
    assert report.quarantine is not None
    quarantined = pd.read_csv(io.BytesIO(lake.get_bytes(report.quarantine.split("/", 3)[3])))
    reasons = dict(zip(quarantined["_source_row"], quarantined[REASON_COLUMN], strict=True))
    assert "'lots' is not a number" in reasons[1]
    assert "999999" in reasons[2] and "outside [0.0, 100000.0]" in reasons[2]
    assert "'astronaut' is not an allowed category" in reasons[3]
    assert "income: missing value" in reasons[4]
    assert "'maybe' is not a target class" in reasons[5]
    assert "'perhaps' is not a boolean" in reasons[6]
    assert reasons[8] == "duplicate of an earlier row"
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 8}
    # missing values in nullable columns are fine and kept
    valid = lake.get_parquet(report.data.split("/", 3)[3])
    assert valid["age"].isna().any() and valid["region"].isna().any()


def test_too_many_failures_stop_the_step_after_quarantining(tmp_path, lake: Lake) -> None:
    spec = write_dataset(tmp_path, _bad_rows())
    extract(spec, lake)
    with pytest.raises(ValidationFailedError, match=r"7 of 60 rows \(11.7%\).*allowed 5.0%.*quarantine"):
        validate(spec, lake, max_invalid_fraction=0.05)
    assert lake.list_keys("quarantine/loan_demo/")  # the evidence is kept
    assert not lake.list_keys("validated/loan_demo/")  # nothing half-written downstream


def test_missing_column_is_a_clear_error() -> None:
    spec = get_spec("breast_cancer")
    frame = pd.DataFrame({"mean_radius": ["1"], "diagnosis": ["benign"]})
    with pytest.raises(ValidationFailedError, match="has no column"):
        check_frame(frame, spec)
