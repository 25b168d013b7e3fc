"""Retiring a model: the registry no longer lists it (deleted or untagged), so the API stops serving it.

Only a complete, successful listing retires; the default model never is; a model that comes back is served
again; another registered model tagged with the same dataset takes over its routes.
"""

from __future__ import annotations

import pytest

from api.registry_catalog import CatalogEntry
from tests.datasets import breast_cancer_record
from tests.unit.api.conftest import FleetWorld
from tests.unit.api.task_models import diabetes_record, wine_record

pytestmark = pytest.mark.unit


def _entry(world: FleetWorld, dataset: str) -> CatalogEntry:
    return next(e for e in world.catalog.entries if e.dataset == dataset)


def test_a_model_the_registry_no_longer_lists_is_retired(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200
    assert 'mlops_api_model_loaded{model="wine"} 1.0' in client.get("/metrics").text
    generation = fleet.generation
    fleet_world.catalog.entries.remove(_entry(fleet_world, "wine"))  # registered model deleted

    status = fleet.discover()

    assert status.ok and status.found == ("breast_cancer", "diabetes")
    assert fleet.names() == ["breast_cancer", "diabetes"] and fleet.generation == generation + 1
    response = client.post("/models/wine/predict", json=wine_record())
    assert response.status_code == 404 and "breast_cancer" in response.text and "diabetes" in response.text
    assert [m["name"] for m in client.get("/models").json()["models"]] == ["breast_cancer", "diabetes"]
    paths = client.get("/openapi.json").json()["paths"]
    assert "/models/wine/predict" not in paths and "/models/diabetes/predict" in paths
    assert 'model="wine"' not in client.get("/metrics").text
    assert client.post("/models/diabetes/predict", json=diabetes_record()).status_code == 200


def test_an_unreachable_registry_or_a_listing_cut_short_retires_nothing(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    fleet_world.catalog.entries.remove(_entry(fleet_world, "wine"))
    fleet_world.catalog.last_listing_complete = False  # MAX_PAGES reached: wine may be on a later page
    assert fleet.discover().ok
    assert "wine" in fleet.names()
    fleet_world.catalog.last_listing_complete = True
    fleet_world.catalog.down = True
    assert fleet.discover().ok is False
    assert "wine" in fleet.names()
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_the_default_model_is_never_retired(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    fleet_world.catalog.entries.clear()
    assert fleet.discover().ok
    assert fleet.names() == ["breast_cancer"]
    assert client.post("/predict", json=breast_cancer_record()).status_code == 200
    assert client.post("/models/breast_cancer/predict", json=breast_cancer_record()).status_code == 200


def test_a_model_that_comes_back_is_served_again(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    wine = _entry(fleet_world, "wine")
    fleet_world.catalog.entries.remove(wine)
    fleet.discover()
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 404
    fleet_world.catalog.entries.append(wine)
    fleet.discover()
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_another_registered_model_tagged_with_the_dataset_takes_over(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    fleet_world.registries["wine_v2"] = fleet_world.registries["wine_classifier"]
    old = _entry(fleet_world, "wine")
    fleet_world.catalog.entries.remove(old)
    fleet_world.catalog.entries.append(CatalogEntry("wine", "wine_v2", "multiclass", "1"))
    fleet.discover()
    store = fleet.get("wine")
    assert store is not None and store.settings.model_name == "wine_v2"
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200
    # both tagged wine: the one served stays (no flip-flop between discoveries)
    fleet_world.catalog.entries.append(old)
    fleet.discover()
    assert fleet.get("wine") is store
