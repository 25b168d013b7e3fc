"""The models side by side: /models routes per task type, 404 and 503 answers, hot swap of one model, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skops.io

from api.registry_catalog import CatalogEntry, GateVerdict
from tests.datasets import breast_cancer_record
from tests.unit.api.conftest import ADMIN_KEY, FleetWorld
from tests.unit.api.task_models import (
    diabetes_data,
    diabetes_frame,
    diabetes_record,
    diabetes_spec,
    records,
    wine_data,
    wine_frame,
    wine_record,
    wine_spec,
)

pytestmark = pytest.mark.unit


def _estimator(model_dir: Path) -> object:
    data = (model_dir / "model.skops").read_bytes()
    return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))


def test_multiclass_predictions_equal_the_models_own(fleet_world: FleetWorld, task_model_dirs: dict[str, Path]) -> None:
    client = fleet_world.make()
    x, y = wine_data()
    spec = wine_spec()
    rows = records(spec, wine_frame().iloc[::6])
    expected = _estimator(task_model_dirs["wine"]).predict_proba(x[::6])  # type: ignore[attr-defined]
    one = client.post("/models/wine/predict", json=rows[0])
    assert one.status_code == 200, one.text
    body = one.json()
    assert set(body["probabilities"]) == {"barolo", "grignolino", "barbera"}
    assert body["label"] == spec.target.labels[int(np.argmax(expected[0]))]
    assert body["probability"] == pytest.approx(expected[0].max())
    assert body["model"] == {"name": "wine_classifier", "version": "1", "alias": "champion"}
    batch = client.post("/models/wine/predict/batch", json={"records": rows})
    assert batch.status_code == 200, batch.text
    got = np.array([[p["probabilities"][label] for label in spec.target.labels] for p in batch.json()["predictions"]])
    np.testing.assert_allclose(got, expected)
    labels = [p["label"] for p in batch.json()["predictions"]]
    assert sum(label == spec.target.labels[t] for label, t in zip(labels, y[::6], strict=True)) >= 0.9 * len(labels)


def test_regression_predictions_equal_the_models_own(fleet_world: FleetWorld, task_model_dirs: dict[str, Path]) -> None:
    client = fleet_world.make()
    x, _ = diabetes_data()
    rows = records(diabetes_spec(), diabetes_frame().head(25))
    assert {r["sex"] for r in rows} == {"sex_1", "sex_2"} and all(isinstance(r["age"], int) for r in rows)
    expected = _estimator(task_model_dirs["diabetes"]).predict(x[:25])  # type: ignore[attr-defined]
    assert len(set(np.round(expected, 6))) == 25  # the rows differ, so a mix-up of rows would show
    one = client.post("/models/diabetes/predict", json=rows[0]).json()
    assert one == {"value": pytest.approx(expected[0]), "unit": None, "model": one["model"]}  # the spec has no unit
    assert one["model"]["name"] == "diabetes_regressor"
    batch = client.post("/models/diabetes/predict/batch", json={"records": rows})
    assert batch.status_code == 200, batch.text
    values = [p["value"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(values, expected)
    assert {p["unit"] for p in batch.json()["predictions"]} == {None}


def test_binary_model_answers_the_same_on_both_routes(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    legacy = client.post("/predict", json=breast_cancer_record())
    named = client.post("/models/breast_cancer/predict", json=breast_cancer_record())
    assert legacy.status_code == named.status_code == 200
    assert legacy.json() == named.json()
    assert set(legacy.json()) == {"class", "label", "probability", "probabilities", "model"}


def test_an_integer_feature_takes_whole_numbers_and_refuses_a_fraction(
    fleet_world: FleetWorld,
) -> None:
    client = fleet_world.make()
    record = diabetes_record() | {"age": 1.5}  # diabetes' age is an integer feature
    response = client.post("/models/diabetes/predict", json=record)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [item["field"] for item in detail] == ["age"]
    assert "whole number, got 1.5" in detail[0]["msg"]
    for wrong in ("61", True, None):
        assert client.post("/models/diabetes/predict", json=record | {"age": wrong}).status_code == 422, wrong
    whole = client.post("/models/diabetes/predict", json=record | {"age": 61})
    assert whole.status_code == 200
    assert whole.json()["value"] != client.post("/models/diabetes/predict", json=record | {"age": 20}).json()["value"]
    # JSON Schema's "integer" is any number without a fractional part: 61.0 is the documented 61
    as_float = client.post("/models/diabetes/predict", content=json.dumps(record | {"age": 61.0}),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert as_float.status_code == 200, as_float.text
    assert as_float.json() == whole.json()


def test_an_unknown_model_answers_404_listing_the_served_ones(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    for response in (
        client.post("/models/iris/predict", json={}),
        client.post("/models/iris/predict/batch", json={"records": []}),
        client.get("/models/iris"),
    ):
        assert response.status_code == 404
        body = response.json()
        assert body["models"] == ["breast_cancer", "diabetes", "wine"]
        assert "breast_cancer, diabetes, wine" in body["detail"] and "ml/datasets/" in body["hint"]


def test_a_gated_out_model_answers_503_with_the_gates_reason(
    fleet_world: FleetWorld, task_model_dirs: dict[str, Path]
) -> None:
    reason = "f1_macro 0.41 is below the first-model threshold 0.8"
    fleet_world.registries["iris_classifier"] = registry = type(fleet_world.registries["wine_classifier"])(
        "iris_classifier"
    )
    registry.publish("1", task_model_dirs["wine"], promote=False)
    fleet_world.catalog.entries.append(
        CatalogEntry("iris", "iris_classifier", "multiclass", None, GateVerdict("1", "rejected", reason))
    )
    client = fleet_world.make()
    response = client.post("/models/iris/predict", json=wine_record())
    assert response.status_code == 503
    body = response.json()
    assert reason in body["detail"] and "version 1" in body["detail"]
    assert "min_champion_score" in body["hint"] and "python -m ml gate iris" in body["hint"]
    summary = {m["name"]: m for m in client.get("/models").json()["models"]}["iris"]
    assert summary["status"] == "gated_out" and summary["reason"] == reason and summary["version"] is None
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_models_lists_every_model_with_task_version_metrics_and_links(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    body = client.get("/models").json()
    assert body["default"] == "breast_cancer"
    models = {m["name"]: m for m in body["models"]}
    assert list(models) == ["breast_cancer", "diabetes", "wine"]
    assert {n: m["task"] for n, m in models.items()} == {
        "breast_cancer": "binary", "diabetes": "regression", "wine": "multiclass"
    }  # fmt: skip
    wine = models["wine"]
    assert wine["status"] == "serving" and wine["version"] == "1" and wine["registered_model"] == "wine_classifier"
    assert wine["metrics"] == {"metric": "f1_macro", "cv_score": 0.97, "test": {"f1_macro": 0.97}}
    assert wine["data_version"] == "v-test-wine" and wine["target"]["classes"] == ["barolo", "grignolino", "barbera"]
    diabetes = models["diabetes"]
    assert diabetes["metrics"] == {"metric": "rmse", "cv_score": 54.0, "test": {"rmse": 54.0}}
    assert {k: diabetes["target"][k] for k in ("unit", "minimum", "maximum")} == {"unit": None, "minimum": 0,
                                                                                 "maximum": 700}  # fmt: skip
    assert wine["links"]["predict"] == "/models/wine/predict"
    described = client.get("/models/wine").json()
    assert described["task"] == "multiclass" and described["dataset"] == "wine" and described["version"] == "1"


def test_one_model_swaps_while_the_others_keep_serving(
    fleet_world: FleetWorld, task_model_dirs: dict[str, Path]
) -> None:
    client = fleet_world.make()
    wine = fleet_world.registries["wine_classifier"]
    wine.publish("2", task_model_dirs["wine_rf"])
    fleet_world.registries["diabetes_regressor"].down = True
    headers = {"X-API-Key": ADMIN_KEY}
    reload = client.post("/models/wine/reload", headers=headers)
    assert reload.status_code == 200 and reload.json()["outcome"] == "loaded"
    assert reload.json()["previous"]["version"] == "1"
    record = wine_record()
    assert client.post("/models/wine/predict", json=record).json()["model"]["version"] == "2"
    assert client.post("/models/diabetes/predict", json=diabetes_record()).json()["model"]["version"] == "1"
    assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"
    assert client.post("/models/diabetes/reload", headers=headers).status_code == 503  # its registry is down
    assert client.post("/models/wine/reload").status_code == 401


def test_metrics_are_labelled_per_model(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    client.post("/models/wine/predict", json=wine_record())
    client.post("/models/diabetes/predict", json=diabetes_record())
    client.post("/models/diabetes/predict", json=diabetes_record())
    text = client.get("/metrics").text
    assert 'mlops_api_predictions_total{label="value",model="diabetes"} 2.0' in text
    assert 'mlops_api_model_loaded{model="wine"} 1.0' in text
    assert 'mlops_api_requests_total{method="POST",path="/models/{name}/predict",status="200"} 3.0' in text


def test_ready_follows_the_default_model_and_lists_the_others(fleet_world: FleetWorld) -> None:
    fleet_world.registries["test_model"].alias_version = None
    client = fleet_world.make()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["models"]["wine"] == {"ready": True, "version": "1"}
    assert ready.json()["models"]["breast_cancer"] == {"ready": False, "version": None}
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200
