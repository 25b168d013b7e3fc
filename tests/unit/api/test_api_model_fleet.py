"""Model discovery: from a (fake) registry catalog, from the champion cache alone, the settings that restrict it,
and the MLflow catalog's REST calls (pagination, gate tags)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.cache_catalog import cached_models
from api.model_fleet import ModelFleet
from api.model_store import ModelStore
from api.registry_catalog import SEARCH_MODELS_PATH, SEARCH_VERSIONS_PATH, CatalogEntry, MlflowCatalog
from tests.unit.api.conftest import FleetWorld, make_settings
from tests.unit.api.fakes import FakeCatalog, FakeRegistry
from tests.unit.api.task_models import wine_record

pytestmark = pytest.mark.unit


def test_discovery_adds_every_tagged_model_without_a_restart(fleet_world: FleetWorld) -> None:
    catalog = fleet_world.catalog
    wine = catalog.entries.pop(1)
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    assert fleet.names() == ["breast_cancer", "diabetes"]
    generation = fleet.generation
    assert client.get("/models/wine").status_code == 404
    catalog.entries.append(wine)
    status = fleet.discover()
    assert status.ok and status.found == ("breast_cancer", "diabetes", "wine")
    assert fleet.names() == ["breast_cancer", "diabetes", "wine"] and fleet.generation == generation + 1
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_models_setting_restricts_the_set_but_keeps_the_default(fleet_world: FleetWorld) -> None:
    client = fleet_world.make(models="wine")
    assert fleet_world.fleet(client).names() == ["breast_cancer", "wine"]
    assert client.get("/models/diabetes").status_code == 404


def test_an_unreachable_registry_keeps_the_served_models(fleet_world: FleetWorld) -> None:
    client = fleet_world.make()
    fleet = fleet_world.fleet(client)
    fleet_world.catalog.down = True
    status = fleet.discover()
    assert status.ok is False and "connection refused" in (status.error or "")
    assert status.found == ("breast_cancer", "diabetes", "wine")
    assert client.get("/models").json()["discovery"]["ok"] is False
    assert client.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_the_default_model_keeps_its_registered_model_name(model_dirs: dict[str, Path]) -> None:
    registry = FakeRegistry("test_model")
    registry.publish("1", model_dirs["bc_logreg"])
    catalog = FakeCatalog([CatalogEntry("breast_cancer", "breast_cancer_classifier", "binary", "1")])
    settings = make_settings()
    fleet = ModelFleet(settings, ModelStore(settings, registry), catalog=catalog, list_cache=lambda _: [])
    fleet.discover()
    assert fleet.default.settings.model_name == "test_model" and fleet.names() == ["breast_cancer"]


def test_a_start_without_mlflow_serves_every_cached_model(
    fleet_world: FleetWorld, tmp_path: Path, task_model_dirs: dict[str, Path]
) -> None:
    warm = fleet_world.make(cache_dir=tmp_path)  # loads all three from the registries: writes the champion cache
    assert len(warm.get("/models").json()["models"]) == 3
    found = cached_models(make_settings(cache_dir=tmp_path))
    assert [(m.dataset, m.registered_model, m.task) for m in found] == [
        ("breast_cancer", "test_model", "binary"),
        ("diabetes", "diabetes_regressor", "regression"),
        ("wine", "wine_classifier", "multiclass"),
    ]
    for registry in fleet_world.registries.values():
        registry.down = True
    fleet_world.catalog.down = True
    cold = fleet_world.make(cache_dir=tmp_path, list_cache=cached_models)
    models = {m["name"]: m for m in cold.get("/models").json()["models"]}
    assert {n: (m["status"], m["loaded_from"]) for n, m in models.items()} == {
        "breast_cancer": ("serving", "cache"), "diabetes": ("serving", "cache"), "wine": ("serving", "cache")
    }  # fmt: skip
    assert cold.post("/models/wine/predict", json=wine_record()).status_code == 200


def test_cache_listing_respects_the_models_setting_and_ignores_foreign_directories(tmp_path: Path) -> None:
    assert cached_models(make_settings(cache_dir=tmp_path)) == []
    (tmp_path / "junk").mkdir()
    assert cached_models(make_settings(cache_dir=tmp_path / "missing")) == []


class _PagedServer:
    """Stands in for MlflowRegistry.get_json: two pages of registered models, one version search."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = dict(params or {})
        self.calls.append((path, params))
        if path == SEARCH_VERSIONS_PATH:
            tags = [{"key": "gate.decision", "value": "rejected"}, {"key": "gate.reason", "value": "score too low"}]
            return {"model_versions": [{"name": "iris_classifier", "version": "3", "tags": tags}]}
        if "page_token" not in params:
            return {
                "registered_models": [
                    {"name": "wine_classifier", "tags": [{"key": "mlops.dataset", "value": "wine"},
                                                         {"key": "mlops.task", "value": "multiclass"}],
                     "aliases": [{"alias": "champion", "version": "2"}]},
                    {"name": "untagged", "tags": []},
                ],
                "next_page_token": "p2",
            }  # fmt: skip
        return {"registered_models": [{"name": "iris_classifier", "tags": [{"key": "mlops.dataset", "value": "iris"}]}]}


def test_the_mlflow_catalog_pages_through_models_and_reads_the_gates_reason() -> None:
    catalog = MlflowCatalog(make_settings(tracking_uri="http://mlflow.invalid:5000"))
    server = _PagedServer()
    catalog.client = server  # type: ignore[assignment]
    entries = catalog.list_models()
    assert [(e.dataset, e.registered_model, e.task, e.champion_version) for e in entries] == [
        ("wine", "wine_classifier", "multiclass", "2"),
        ("iris", "iris_classifier", None, None),
    ]
    assert entries[0].latest_gate is None
    gate = entries[1].latest_gate
    assert gate is not None and (gate.version, gate.decision, gate.reason) == ("3", "rejected", "score too low")
    paths = [path for path, _ in server.calls]
    assert paths == [SEARCH_MODELS_PATH, SEARCH_MODELS_PATH, SEARCH_VERSIONS_PATH]
    assert server.calls[1][1]["page_token"] == "p2"
    assert server.calls[2][1]["order_by"] == ["version_number DESC"]
