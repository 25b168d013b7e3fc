"""``python -m ml``: listing the specs and validating a spec and its data offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml import cli
from ml.readers import read_source
from ml.spec import DATASETS_DIR, get_spec

pytestmark = pytest.mark.unit


def _spec_with_csv(tmp_path: Path, rows: int, broken: dict[int, tuple[str, str]]) -> Path:
    """A copy of the breast cancer spec reading ``rows`` rows from a CSV, with ``broken`` cells overwritten."""
    frame = read_source(get_spec("breast_cancer")).head(rows).astype(str)
    for index, (column, value) in broken.items():
        frame.loc[index, column] = value
    data = tmp_path / "tiny.csv"
    frame.to_csv(data, index=False)
    spec = yaml.safe_load((DATASETS_DIR / "breast_cancer.yaml").read_text())
    spec |= {"name": "tiny", "source": {"reader": "csv", "options": {"path": str(data)}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_list_names_every_shipped_spec(capsys: pytest.CaptureFixture[str]) -> None:
    """``list`` prints one line per spec in ml/datasets/."""
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.startswith("breast_cancer ")


def test_validate_the_worked_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example validates with no quarantined row."""
    assert cli.main(["validate", "breast_cancer"]) == 0
    assert "569 read, 569 valid, 0 quarantined" in capsys.readouterr().out


def test_validate_prints_the_quarantine_reasons_and_fails_above_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad rows are named with their reasons; 2 of 20 (10 %) is above the default 5 %: exit 1."""
    spec = _spec_with_csv(tmp_path, 20, {3: ("mean_radius", "abc"), 7: ("mean_area", "-5")})
    assert cli.main(["validate", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "20 read, 18 valid, 2 quarantined (10.0%)" in out
    assert "row 4: mean_radius" in out and "row 8: mean_area: -5" in out
    assert "FAILS" in out


def test_validate_passes_within_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1 bad row of 40 (2.5 %) is within the limit: exit 0, the row still reported."""
    spec = _spec_with_csv(tmp_path, 40, {0: ("mean_texture", "")})
    assert cli.main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "1 quarantined" in out and "row 1: mean_texture: missing value" in out


def test_an_invalid_spec_or_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A spec that does not load, or a source that cannot be read, says why and exits 2."""
    assert cli.main(["validate", "no_such_dataset"]) == 2
    assert "no dataset spec named 'no_such_dataset'" in capsys.readouterr().err
    spec = _spec_with_csv(tmp_path, 5, {})
    (tmp_path / "tiny.csv").unlink()
    assert cli.main(["validate", str(spec)]) == 2
    assert "cannot be read" in capsys.readouterr().err
