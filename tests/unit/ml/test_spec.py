import copy

import pytest

from ml.readers import read_source
from ml.spec import DatasetSpec, SpecError, available_datasets, get_spec, parse_spec
from tests.datasets import MIXED_SPEC as SPEC


def spec_with(**changes: object) -> dict:
    data = copy.deepcopy(SPEC)
    data.update(changes)
    return data


def test_breast_cancer_spec_is_complete() -> None:
    spec = get_spec("breast_cancer")
    assert "breast_cancer" in available_datasets()
    assert len(spec.features) == 30
    assert spec.target.positive_class == "malignant"
    for feature in spec.features:
        assert feature.description and feature.maximum and feature.example is not None
        assert feature.minimum <= feature.example <= feature.maximum


def test_breast_cancer_reads_offline_with_readable_columns() -> None:
    spec = get_spec("breast_cancer")
    frame = read_source(spec)
    assert list(frame.columns) == spec.columns
    assert len(frame) == 569
    assert frame["diagnosis"].value_counts().to_dict() == {"benign": 357, "malignant": 212}


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"name": "x", "kind": "categorical", "description": "d"}, "needs a non-empty 'categories'"),
        ({"name": "x", "kind": "numeric", "description": "d", "minimum": 5, "maximum": 1}, "above maximum"),
        ({"name": "x", "kind": "numeric", "description": "d", "categories": ["a"]}, "cannot have 'categories'"),
        ({"name": "x", "kind": "boolean", "description": "d", "maximum": 1}, "cannot have minimum/maximum"),
        ({"name": "Bad Name", "kind": "numeric", "description": "d"}, "features.0.name"),
        ({"name": "x", "kind": "text", "description": "d"}, "features.0.kind"),
        ({"name": "x", "kind": "numeric", "description": "d", "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_feature_is_rejected_with_a_clear_message(feature: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(features=[feature]))


def test_duplicate_features_and_target_conflicts() -> None:
    feature = SPEC["features"][0]
    with pytest.raises(SpecError, match="listed twice"):
        parse_spec(spec_with(features=[feature, feature]))
    with pytest.raises(SpecError, match="also listed as a feature"):
        parse_spec(spec_with(features=[{**feature, "name": "defaulted"}]))
    with pytest.raises(SpecError, match="positive_class 'maybe'"):
        parse_spec(spec_with(target={**SPEC["target"], "positive_class": "maybe"}))


def test_unknown_dataset_and_reader() -> None:
    with pytest.raises(SpecError, match=r"no dataset spec named 'nope'.*available: .*breast_cancer"):
        get_spec("nope")
    spec = parse_spec(spec_with(source={"reader": "parquet_from_mars"}))
    with pytest.raises(SpecError, match="reader 'parquet_from_mars', which does not exist"):
        read_source(spec)


def test_fingerprint_ignores_prose_but_not_rules() -> None:
    base = parse_spec(SPEC)
    reworded = parse_spec(spec_with(description="other words", title="T"))
    assert base.fingerprint() == reworded.fingerprint()
    narrowed = copy.deepcopy(SPEC)
    narrowed["features"][0]["maximum"] = 100
    assert parse_spec(narrowed).fingerprint() != base.fingerprint()


def test_spec_round_trips_through_json() -> None:
    spec = get_spec("breast_cancer")
    assert DatasetSpec.model_validate_json(spec.to_json()) == spec
