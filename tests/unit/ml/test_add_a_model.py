"""The "add your model" walkthrough (docs/add-a-model.md) works as written.

Its example spec (``docs/examples/heart_disease.yaml``) reads a headerless CSV in the UCI Cleveland format
from the data directory: numbers coding categories, ``?`` for missing values, a target graded 0-4. The data
here is generated in that format (the real file is not shipped), with two rows a user's file really has:
a fractional vessel count and an unknown chest-pain code.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ml import cli
from ml.readers import read_source
from ml.spec import load_spec_file

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "examples" / "heart_disease.yaml"
WALKTHROUGH = REPO / "docs" / "add-a-model.md"


def cleveland_rows(count: int, seed: int = 0) -> list[list[str]]:
    """Rows in the Cleveland file's format: floats as text ('1.0'), '?' where a value is missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        disease = int(rng.integers(0, 5))
        rows.append(
            [
                f"{rng.integers(29, 78)}.0",  # age, written as a float like the source does
                f"{rng.integers(0, 2)}.0",
                f"{rng.integers(1, 5)}.0",
                f"{rng.integers(94, 200)}.0",
                f"{rng.integers(126, 564)}.0",
                f"{rng.integers(0, 2)}.0",
                f"{rng.integers(0, 3)}.0",
                f"{rng.integers(71, 202)}.0",
                f"{rng.integers(0, 2)}.0",
                f"{rng.uniform(0, 6.2):.1f}",
                f"{rng.integers(1, 4)}.0",
                "?" if i % 50 == 7 else f"{rng.integers(0, 4)}.0",
                "?" if i % 60 == 11 else f"{rng.choice([3, 6, 7])}.0",
                str(disease),
            ]
        )
    return rows


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding ``processed.cleveland.data`` (300 rows, 2 of them bad), set as MLOPS_DATA_DIR."""
    rows = cleveland_rows(300)
    rows[3][11] = "1.5"  # 1.5 vessels: not a count
    rows[5][2] = "9.0"  # chest pain type 9 is not a code of the spec
    with (tmp_path / "processed.cleveland.data").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    return tmp_path


def test_the_walkthrough_shows_the_example_spec_it_tests() -> None:
    """The page names the example spec and the commands this test runs."""
    text = WALKTHROUGH.read_text()
    assert "docs/examples/heart_disease.yaml" in text
    assert "python -m ml validate heart_disease" in text


def test_the_example_spec_reads_codes_as_labels(data_dir: Path) -> None:
    """Codes become the spec's labels on read; grades 1-4 all become 'present'; '?' becomes missing."""
    frame = read_source(load_spec_file(EXAMPLE))
    assert set(frame["diagnosis"]) == {"absent", "present"}
    assert {"typical_angina", "atypical_angina", "non_anginal", "asymptomatic"} <= set(frame["chest_pain"])
    assert set(frame["sex"]) == {"male", "female"}
    assert frame["vessels"].isna().sum() == 6


def test_validate_names_the_bad_rows_of_a_headerless_csv(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The offline check quarantines exactly the two bad rows, each with its reason, and passes (2 of 300)."""
    assert cli.main(["validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "300 read, 298 valid, 2 quarantined" in out
    assert "vessels" in out and "1.5" in out
    assert "chest_pain" in out and "'9.0'" in out
