"""The typed contracts of ml.contracts: round trips, the exact wire format, and refusal of malformed input."""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml import contracts
from ml.contracts import (
    DATASET_TAG,
    TASK_TAG,
    GateDecision,
    GateTags,
    ModelMetadata,
    ModelVersionTags,
    RawManifest,
    RawPointer,
    RegisteredModelTags,
    SearchHandle,
    SearchOutcomeTags,
    SearchPlan,
    SearchResult,
    SearchRunTags,
    SplitManifest,
    SplitPointer,
    ValidationReport,
    WorkerReport,
    dataset_filter,
)

SHA = "ab" * 32

RAW = {
    "dataset": "breast_cancer",
    "source": {"reader": "sklearn", "path": None, "options": {"loader": "load_breast_cancer"}},
    "rows": 569,
    "columns": ["mean_radius", "diagnosis"],
    "sha256": SHA,
    "bytes": 123456,
    "key": f"raw/breast_cancer/{SHA[:16]}/data.csv",
    "extracted_at": "2026-01-02T03:04:05.678901+00:00",
}
REPORT = {
    "dataset": "breast_cancer",
    "raw_manifest": f"raw/breast_cancer/{SHA[:16]}/manifest.json",
    "raw_sha256": SHA,
    "rows_in": 60,
    "rows_valid": 53,
    "rows_quarantined": 7,
    "invalid_fraction": 0.116667,
    "max_invalid_fraction": 0.5,
    "failures_by_field": {"income": 3, "employment": 1},
    "quarantine": "s3://lake/quarantine/breast_cancer/abababababababab/rows.csv",
    "data": "s3://lake/validated/breast_cancer/abababababababab/data.parquet",
    "schema_hash": "f" * 16,
}
SPLIT = {
    "dataset": "breast_cancer",
    "data_version": "v-0123456789ab",
    "schema_hash": "f" * 16,
    "raw_sha256": SHA,
    "seed": 42,
    "test_size": 0.2,
    "rows": {"train": 455, "test": 114},
    "class_balance": {"train": {"benign": 285, "malignant": 170}, "test": {"benign": 72, "malignant": 42}},
    "train": "s3://lake/processed/breast_cancer/v-0123456789ab/train.parquet",
    "test": "s3://lake/processed/breast_cancer/v-0123456789ab/test.parquet",
}
SUMMARY = {"count": 353, "mean": 152.1, "std": 77.0, "min": 25.0, "q25": 87.0, "median": 140.0, "q75": 211.0,
           "max": 346.0}  # fmt: skip
REGRESSION_SPLIT = {k: v for k, v in SPLIT.items() if k != "class_balance"} | {
    "dataset": "diabetes",
    "target_summary": {"train": SUMMARY, "test": SUMMARY | {"count": 89}},
}
HANDLE = {
    "study_name": "breast_cancer-manual__2026",
    "parent_run_id": "0" * 32,
    "experiment_id": "1",
    "data_version": "v-0123456789ab",
    "split_manifest": "processed/breast_cancer/v-0123456789ab/manifest.json",
}
WORKER = {"worker": 0, "seconds": 1.5, "trials_in_study": 6, "child_runs_logged": 6, "logging_errors": 0}
RESULT = {
    "model_uri": "models:/m-1234",
    "model_id": "m-1234",
    "run_id": "0" * 32,
    "data_version": "v-0123456789ab",
    "family": "logreg",
    "best_params": {"family": "logreg", "logreg__C": 0.5, "logreg__class_weight": "none", "rf__max_depth": 3},
    "cv_score": 0.97,
    "test_metrics": {"f1": 0.96, "precision": 0.95, "recall": 0.97, "roc_auc": 0.99, "accuracy": 0.96},
}


# ------------------------------------------------------------------------------------------------- documents
@pytest.mark.parametrize(
    ("model", "document"),
    [
        (RawManifest, RAW),
        (RawPointer, {"manifest": RAW["key"].replace("data.csv", "manifest.json"), "sha256": SHA}),
        (ValidationReport, REPORT),
        (ValidationReport, REPORT | {"quarantine": None, "rows_quarantined": 0, "failures_by_field": {}}),
        (SplitManifest, SPLIT),
        (SplitManifest, REGRESSION_SPLIT),
        (SplitPointer, {"manifest": HANDLE["split_manifest"], "data_version": "v-0123456789ab"}),
        (SearchHandle, HANDLE),
        (SearchPlan, HANDLE | {"n_trials": 60}),
        (WorkerReport, WORKER),
        (SearchResult, RESULT),
    ],
)
def test_documents_round_trip_unchanged(model: type[contracts.Contract], document: dict) -> None:
    """The JSON form of each document (lake file, XCom) is exactly the dict the code wrote before."""
    parsed = model.model_validate(document)
    dumped = parsed.model_dump(mode="json")
    assert dumped == document
    assert json.dumps(dumped, sort_keys=True) == json.dumps(document, sort_keys=True)  # the lake's bytes
    assert model.model_validate_json(json.dumps(dumped)) == parsed
    # every field in declaration order; a split leaves out the one of class balance and target summary it lacks
    assert list(dumped) == [f for f in model.model_fields if f in document]


def test_the_xcom_field_names_are_the_wire_format() -> None:
    assert list(RawManifest.model_fields) == [
        "dataset", "source", "rows", "columns", "sha256", "bytes", "key", "extracted_at",
    ]  # fmt: skip
    assert list(ValidationReport.model_fields) == [
        "dataset", "raw_manifest", "raw_sha256", "rows_in", "rows_valid", "rows_quarantined", "invalid_fraction",
        "max_invalid_fraction", "failures_by_field", "quarantine", "data", "schema_hash",
    ]  # fmt: skip
    assert list(SplitManifest.model_fields) == [
        "dataset", "data_version", "schema_hash", "raw_sha256", "seed", "test_size", "rows", "class_balance",
        "train", "test", "target_summary",
    ]  # fmt: skip
    assert "target_summary" not in SplitManifest.model_validate(SPLIT).model_dump(mode="json")  # as before
    assert list(SearchPlan.model_fields) == [*HANDLE, "n_trials"]
    assert list(GateDecision.model_fields) == [
        "model_name", "version", "promoted", "reason", "metric", "challenger_score", "champion_score",
        "champion_version", "data_version", "direction", "min_score", "margin",
    ]  # fmt: skip


def test_a_search_plan_is_a_search_handle() -> None:
    plan = SearchPlan.model_validate(HANDLE | {"n_trials": 3})
    assert isinstance(plan, SearchHandle)
    assert SearchHandle.model_validate(plan.model_dump(exclude={"n_trials"})).model_dump() == HANDLE


def test_best_params_keep_their_json_types() -> None:
    dumped = SearchResult.model_validate(RESULT | {"best_params": {"a": 1, "b": 1.0, "c": True, "d": None}})
    assert json.dumps(dumped.best_params) == '{"a": 1, "b": 1.0, "c": true, "d": null}'


@pytest.mark.parametrize(
    ("model", "document", "message"),
    [
        (RawManifest, RAW | {"rows": "many"}, r"rows\n  Input should be a valid integer"),
        (RawManifest, RAW | {"sha256": "xyz"}, r"sha256\n  String should match pattern"),
        (RawManifest, {k: v for k, v in RAW.items() if k != "key"}, r"key\n  Field required"),
        (ValidationReport, REPORT | {"invalid_fraction": 1.5}, r"invalid_fraction\n  Input should be less than"),
        (SplitManifest, SPLIT | {"rows": {"train": 1}}, r"rows.test\n  Field required"),
        (SplitManifest, SPLIT | {"extra": 1}, r"extra\n  Extra inputs are not permitted"),
        (SearchPlan, HANDLE, r"1 validation error for SearchPlan\nn_trials\n  Field required"),
        (SearchPlan, HANDLE | {"n_trials": 0}, r"n_trials\n  Input should be greater than or equal to 1"),
        (SearchResult, RESULT | {"cv_score": "high"}, r"cv_score\n  Input should be a valid number"),
    ],
)
def test_malformed_documents_are_refused_naming_the_field(
    model: type[contracts.Contract], document: dict, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(document)


def test_contracts_are_immutable() -> None:
    handle = SearchHandle.model_validate(HANDLE)
    with pytest.raises(ValidationError, match="frozen"):
        handle.study_name = "other"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------- tags
def test_search_run_tags_wire_format() -> None:
    tags = SearchRunTags(dataset="breast_cancer", data_version="v-1", study="s").to_tags()
    assert tags == {
        "mlops.dataset": "breast_cancer", "mlops.data_version": "v-1", "mlops.study": "s", "mlops.kind": "search",
    }  # fmt: skip
    assert list(tags) == ["mlops.dataset", "mlops.data_version", "mlops.study", "mlops.kind"]
    other = {"mlops.model_id": "m-1", "mlflow.runName": "search-v-1", "mlops.result": "{}"}  # other records' tags
    assert SearchRunTags.from_tags(tags | other).study == "s"
    assert SearchRunTags.tag_key("kind") == "mlops.kind"


def test_search_outcome_tag_is_the_historic_json() -> None:
    result = SearchResult.model_validate(RESULT)
    tags = SearchOutcomeTags(model_id="m-1234", result=result).to_tags()
    assert tags == {"mlops.model_id": "m-1234", "mlops.result": json.dumps(RESULT)}  # json.dumps' separators, order
    assert SearchOutcomeTags.from_tags(tags).result == result
    assert SearchOutcomeTags.tag_key("model_id") == "mlops.model_id"


def test_model_version_tags_wire_format() -> None:
    tags = ModelVersionTags(model_id="m-1", data_version="v-1", family="logreg", schema_hash="abc").to_tags()
    assert tags == {
        "mlops.model_id": "m-1", "mlops.data_version": "v-1", "mlops.family": "logreg", "mlops.schema_hash": "abc",
    }  # fmt: skip
    assert ModelVersionTags.from_tags(tags | {"gate.decision": "promoted"}).family == "logreg"
    partial = ModelVersionTags.from_tags({"mlops.data_version": "v-2"})  # a version registered by other means
    assert (partial.data_version, partial.model_id) == ("v-2", None)
    assert partial.to_tags() == {"mlops.data_version": "v-2"}


def test_gate_tags_wire_format_and_round_trip() -> None:
    gate = GateTags(
        metric="f1", reason="challenger f1 0.9700 vs champion v1 0.9500: gain +0.0200 >= margin 0.0050",
        challenger_score=0.97000012345, champion_score=0.95, champion_version="1", margin=0.005, min_score=0.8,
        data_version="v-1", decision="promoted",
    )  # fmt: skip
    tags = gate.to_tags()
    assert tags == {
        "gate.metric": "f1",
        "gate.reason": gate.reason,
        "gate.challenger_score": "0.970000",
        "gate.champion_score": "0.950000",
        "gate.champion_version": "1",
        "gate.margin": "0.005",
        "gate.min_score": "0.8",
        "gate.data_version": "v-1",
        "gate.decision": "promoted",
    }
    assert list(tags)[-1] == "gate.decision"  # written last: it marks the gate as complete
    back = GateTags.from_tags(tags | {"mlops.model_id": "m-1"})
    assert back.promoted and back.challenger_score == 0.97 and back.champion_version == "1"


def test_gate_tags_record_the_direction_before_the_decision() -> None:
    gate = GateTags(
        metric="rmse", reason="test rmse 70.2 is above the first-model threshold 65", challenger_score=70.2,
        min_score=65.0, margin=0.5, data_version="v-1", direction="minimize", decision="rejected",
    )  # fmt: skip
    tags = gate.to_tags()
    assert tags["gate.direction"] == "minimize" and tags["gate.min_score"] == "65.0"
    assert list(tags)[-1] == "gate.decision"
    assert GateTags.from_tags(tags).direction == "minimize"
    with pytest.raises(ValidationError, match="direction"):
        GateTags.from_tags(tags | {"gate.direction": "sideways"})


def test_registered_model_tags_are_the_api_discovery_keys() -> None:
    tags = RegisteredModelTags(dataset="wine", task="multiclass").to_tags()
    assert (
        tags == {DATASET_TAG: "wine", TASK_TAG: "multiclass"} == {"mlops.dataset": "wine", "mlops.task": "multiclass"}
    )
    assert RegisteredModelTags.from_tags(tags | {"mlops.model_id": "m"}).task == "multiclass"
    assert dataset_filter("wine") == "tags.`mlops.dataset` = 'wine'"
    with pytest.raises(ValidationError, match="task"):
        RegisteredModelTags.from_tags({DATASET_TAG: "x", TASK_TAG: "ranking"})


def test_gate_tags_write_none_for_a_missing_champion() -> None:
    gate = GateTags(
        metric="f1", reason="first model", challenger_score=0.5, champion_score=None, champion_version=None,
        margin=0.0, min_score=0.8, data_version="v-1", decision="rejected",
    )  # fmt: skip
    tags = gate.to_tags()
    assert (tags["gate.champion_score"], tags["gate.champion_version"], tags["gate.margin"]) == ("none", "none", "0.0")
    back = GateTags.from_tags(tags)
    assert (back.champion_score, back.champion_version, back.promoted) == (None, None, False)


def test_gate_tags_of_an_older_gate_fill_in_like_before() -> None:
    back = GateTags.from_tags({"gate.decision": "rejected"})
    assert back.reason == "" and back.metric is None and math.isnan(back.challenger_score)
    assert back.champion_score is None and back.data_version == ""


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({}, r"decision\n  Field required"),
        ({"gate.decision": "maybe"}, r"decision\n  Input should be 'promoted' or 'rejected'"),
        ({"gate.decision": "promoted", "gate.challenger_score": "high"}, r"challenger_score\n  Input should be"),
    ],
)
def test_malformed_gate_tags_are_refused(tags: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GateTags.from_tags(tags)


def test_malformed_result_tag_is_refused() -> None:
    with pytest.raises(ValidationError, match="result"):
        SearchOutcomeTags.from_tags({"mlops.model_id": "m-1", "mlops.result": json.dumps({"model_id": "m-1"})})


def test_tag_key_refuses_an_unknown_field() -> None:
    with pytest.raises(KeyError, match="GateTags has no field 'decided'"):
        GateTags.tag_key("decided")


# ------------------------------------------------------------------------------------------------- model metadata
def test_model_metadata_round_trip_and_older_models() -> None:
    metadata = {
        "dataset_spec": {"name": "breast_cancer"}, "data_version": "v-1", "schema_hash": "abc", "task": "binary",
        "metric": "f1", "cv_score": 0.9, "test_metrics": {"f1": 0.9}, "family": "logreg",
    }  # fmt: skip
    parsed = ModelMetadata.model_validate(metadata)
    assert parsed.model_dump(mode="json") == metadata
    older = ModelMetadata.model_validate({"dataset_spec": {"name": "x"}, "data_version": "v-2", "other": 1})
    assert (older.data_version, older.family, older.test_metrics, older.task) == ("v-2", None, None, None)
    with pytest.raises(ValidationError, match="task"):
        ModelMetadata.model_validate(metadata | {"task": "clustering"})
    with pytest.raises(ValidationError, match=r"dataset_spec\n  Field required"):
        ModelMetadata.model_validate({"data_version": "v-1"})
    with pytest.raises(ValidationError, match=r"cv_score\n  Input should be a valid number"):
        ModelMetadata.model_validate(metadata | {"cv_score": "n/a"})


# ------------------------------------------------------------------------------------------------- packaging
def test_contracts_import_only_pydantic_and_the_standard_library() -> None:
    """The API image ships ml/contracts.py without Airflow, MLflow, pandas or the rest of ml."""
    tree = ast.parse(Path(contracts.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - {"pydantic", "__future__"} <= set(sys.stdlib_module_names)


def test_contracts_ship_with_the_api() -> None:
    from infra.aws_lambda.package_build import PROJECT_FILES

    repo = Path(__file__).resolve().parents[3]
    assert "ml/contracts.py" in PROJECT_FILES
    assert "ml/contracts.py" in (repo / "infra/docker/api.Dockerfile").read_text()
    assert "!ml/contracts.py" in (repo / "infra/docker/api.Dockerfile.dockerignore").read_text()
