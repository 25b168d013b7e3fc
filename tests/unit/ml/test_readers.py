"""Readers: coded values become labels, sklearn loader options, and relative paths under MLOPS_DATA_DIR."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.etl import extract
from ml.etl.validate import REASON_COLUMN, check_frame
from ml.lake import Lake
from ml.readers import read_source, resolve_data_path
from ml.spec import DatasetSpec, get_spec, parse_spec

CODED: dict[str, Any] = {
    "name": "coded",
    "title": "Coded",
    "description": "Categories and classes written as codes.",
    "task": "multiclass",
    "source": {"reader": "csv", "options": {"path": "coded.csv"}},
    "target": {"name": "grade", "description": "Grade.", "classes": {1: "low", 2: "mid", 3: "high"}},
    "features": [
        {"name": "size", "kind": "numeric", "description": "Size.", "minimum": 0},
        {"name": "colour", "kind": "categorical", "description": "Colour.", "categories": {1: "red", 2: "blue"}},
    ],
}
ROWS = "size,colour,grade\n1.5,1,1\n2.5,2,2\n3.5,2.0,3\n4.5,7,1\n5.5,1,9\n"


def coded_spec(data_dir: Path) -> DatasetSpec:
    (data_dir / "coded.csv").write_text(ROWS)
    return parse_spec(CODED)


def test_codes_become_labels_and_unknown_codes_are_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    spec = coded_spec(tmp_path)
    frame = read_source(spec)
    assert list(frame["colour"]) == ["red", "blue", "blue", "7", "red"]
    assert list(frame["grade"]) == ["low", "mid", "high", "low", "9"]
    raw = pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str)
    valid, quarantined = check_frame(raw, spec)
    assert len(valid) == 3
    reasons = list(quarantined[REASON_COLUMN])
    assert reasons == [
        "colour: '7' is not an allowed category (nor one of the codes 1, 2)",
        "grade: '9' is not a target class ['low', 'mid', 'high']",
    ]


def test_a_relative_path_is_read_from_the_data_dir_and_recorded_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lake: Lake
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    spec = coded_spec(tmp_path)
    manifest = extract(spec, lake)
    assert manifest.rows == 5 and manifest.source["options"]["path"] == "coded.csv"  # not the absolute path
    assert resolve_data_path("coded.csv") == str(tmp_path / "coded.csv")
    assert resolve_data_path("s3://bucket/coded.csv") == "s3://bucket/coded.csv"


def test_a_missing_file_names_the_resolved_path_and_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere/coded.csv does not exist.*relative to MLOPS_DATA_DIR="):
        read_source(parse_spec(CODED))


def test_the_default_data_dir_is_the_repository_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.settings import MLSettings

    monkeypatch.delenv("MLOPS_DATA_DIR", raising=False)
    repo = Path(__file__).resolve().parents[3]
    assert MLSettings().data_dir == repo / "data"
    assert (repo / "data" / "README.md").is_file()
    assert "MLOPS_DATA_DIR" not in MLSettings().to_env()  # a path of this machine: not passed on


def test_sklearn_regression_target_and_loader_options() -> None:
    spec = get_spec("diabetes")
    frame = read_source(spec)
    assert len(frame) == 442 and list(frame.columns) == spec.columns
    assert frame["disease_progression"].between(25, 346).all()  # the measured values, not class names
    assert frame["bmi"].max() == pytest.approx(42.2)  # scaled=False: not standardised
    assert set(frame["sex"]) == {"sex_1", "sex_2"}


def test_sklearn_target_codes_map_to_the_spec_classes() -> None:
    frame = read_source(get_spec("wine"))
    assert frame["cultivar"].value_counts().to_dict() == {"grignolino": 71, "barolo": 59, "barbera": 48}
