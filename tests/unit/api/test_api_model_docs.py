"""The OpenAPI document per model: tags, prefixed schemas, examples from the model, rebuilt when a model appears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.bundle import build_bundle
from api.model_loader import MLMODEL
from api.registry_client import ModelRef
from tests.unit.api.conftest import FleetWorld
from tests.unit.api.task_models import diabetes_data, wine_data

pytestmark = pytest.mark.unit


def _doc(world: FleetWorld, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    client = world.make(**overrides)
    return client, client.get("/openapi.json").json()


def test_each_model_has_its_own_tag_paths_and_prefixed_schemas(fleet_world: FleetWorld) -> None:
    _, doc = _doc(fleet_world)
    tags = {t["name"]: t["description"] for t in doc["tags"]}
    assert "Wine recognition" in tags["wine"] and "multiclass" in tags["wine"]
    assert "Classes: `barolo`, `grignolino`, `barbera`" in tags["wine"]
    assert "Diabetes progression" in tags["diabetes"] and "unit: none" in tags["diabetes"]
    assert "(positive: `malignant`)" in tags["breast_cancer"]
    schemas = doc["components"]["schemas"]
    for prefix in ("Wine", "Diabetes", "BreastCancer"):
        assert {f"{prefix}Record", f"{prefix}BatchRequest", f"{prefix}Prediction", f"{prefix}BatchPrediction"} <= set(
            schemas
        )
    predict = doc["paths"]["/models/wine/predict"]["post"]
    assert predict["tags"] == ["wine"] and "parameters" not in predict
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WineRecord"
    }
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/WinePrediction"}
    batch = doc["paths"]["/models/diabetes/predict/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DiabetesBatchRequest")
    assert doc["paths"]["/models/wine/reload"]["post"]["tags"] == ["wine"]
    assert "/models/{name}/predict" not in doc["paths"] and "/models/{name}" in doc["paths"]
    assert doc["components"]["schemas"]["Record"]["title"] == "BreastCancerRecord"  # the legacy routes' schema


def test_schemas_carry_integer_kinds_titles_and_the_models_own_examples(fleet_world: FleetWorld) -> None:
    client, doc = _doc(fleet_world)
    schemas = doc["components"]["schemas"]
    age = schemas["DiabetesRecord"]["properties"]["age"]
    assert age["type"] == "integer" and age["title"] == "Age" and age["examples"] == [48]
    sex = schemas["DiabetesRecord"]["properties"]["sex"]
    assert sex["enum"] == ["sex_1", "sex_2"] and sex["examples"] == ["sex_1"]
    magnesium = schemas["WineRecord"]["properties"]["magnesium"]
    assert magnesium["type"] == "number" and magnesium["title"] == "Magnesium" and magnesium["examples"] == [100.0]
    wine = schemas["WinePrediction"]
    assert wine["properties"]["label"]["enum"] == ["barolo", "grignolino", "barbera"]
    example = wine["examples"][0]
    answer = client.post("/models/wine/predict", json=schemas["WineRecord"]["examples"][0]).json()
    assert example == answer  # the example is the model's own answer to the example record
    assert set(example["probabilities"]) == {"barolo", "grignolino", "barbera"}
    diabetes = schemas["DiabetesPrediction"]
    assert set(diabetes["properties"]) == {"value", "unit", "model"}
    assert diabetes["examples"][0]["unit"] is None and isinstance(diabetes["examples"][0]["value"], float)
    answer = client.post("/models/diabetes/predict", json=schemas["DiabetesRecord"]["examples"][0]).json()
    assert diabetes["examples"][0] == answer
    assert schemas["DiabetesBatchPrediction"]["examples"][0]["predictions"][0] == {
        k: v for k, v in diabetes["examples"][0].items() if k != "model"
    }


def test_the_document_changes_when_a_model_appears(fleet_world: FleetWorld) -> None:
    diabetes = fleet_world.catalog.entries.pop(2)
    client, before = _doc(fleet_world)
    assert "/models/diabetes/predict" not in before["paths"] and "DiabetesRecord" not in before["components"]["schemas"]
    fleet_world.catalog.entries.append(diabetes)
    fleet_world.fleet(client).discover()
    after = client.get("/openapi.json").json()
    assert "/models/diabetes/predict" in after["paths"] and "DiabetesRecord" in after["components"]["schemas"]
    assert "diabetes" in {t["name"] for t in after["tags"]}


@pytest.mark.parametrize("name", ["wine", "wine_rf", "diabetes"])
def test_the_shortcut_is_verified_for_every_task(task_model_dirs: dict[str, Path], name: str) -> None:
    directory = task_model_dirs[name]
    ref = ModelRef(name=name, version="1", alias="champion", source="models:/m-1", artifact_uri=directory.as_uri())
    fast = build_bundle(ref, (directory / MLMODEL).read_bytes(), lambda f: (directory / f).read_bytes())
    plain = build_bundle(ref, (directory / MLMODEL).read_bytes(), lambda f: (directory / f).read_bytes(), False)
    assert "verified against the pipeline" in fast.inference and plain.inference == "scikit-learn pipeline"
    x = (wine_data() if name.startswith("wine") else diabetes_data())[0][:40]  # diabetes: an object array
    if fast.is_classifier:
        assert fast.predict_proba(x).shape == (40, 3)
        np.testing.assert_array_equal(fast.predict_proba(x), plain.estimator.predict_proba(x))
    else:
        np.testing.assert_array_equal(fast.predict_values(x), plain.estimator.predict(x))
