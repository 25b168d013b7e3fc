"""Fixtures of the API unit tests: models saved once per session, a fake registry, and a TestClient factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.model_fleet import ModelFleet
from api.model_store import ModelStore
from api.registry_catalog import CatalogEntry
from api.settings import ApiSettings
from tests.datasets import breast_cancer_frame, mixed_frame, mixed_spec, save_model, typed_mixed_frame
from tests.unit.api.fakes import FakeCatalog, FakeRegistry
from tests.unit.api.task_models import save_task_models

ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three saved models: breast cancer (logistic regression, gradient boosting) and the mixed spec."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    spec, frame = breast_cancer_frame()
    mixed = mixed_spec()
    return {
        "bc_logreg": save_model(root / "bc_logreg", spec, frame, LogisticRegression(max_iter=2000)),
        "bc_hgb": save_model(root / "bc_hgb", spec, frame, HistGradientBoostingClassifier(max_iter=20)),
        "mixed": save_model(root / "mixed", mixed, typed_mixed_frame(mixed_frame()), LogisticRegression(max_iter=2000)),
    }


def make_settings(**overrides: Any) -> ApiSettings:
    """Settings for a test: no MLflow, no polling, no retry delay, a known admin key, no champion cache."""
    values: dict[str, Any] = {
        "tracking_uri": None,
        "cache_dir": None,
        "cache_s3_uri": None,
        "model_name": "test_model",
        "poll_interval_s": 0,
        "retry_interval_s": 0,
        "admin_key": ADMIN_KEY,
        "max_batch": 50,
    }
    return ApiSettings(**(values | overrides))


@pytest.fixture
def registry(model_dirs: dict[str, Path]) -> FakeRegistry:
    """A fake registry whose champion is version 1 (breast cancer, logistic regression)."""
    fake = FakeRegistry()
    fake.publish("1", model_dirs["bc_logreg"])
    return fake


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(registry: FakeRegistry) -> Iterator[ClientFactory]:
    """Build a started TestClient; ``source`` defaults to the fake registry, keywords override settings."""
    clients: list[TestClient] = []

    def factory(source: Any = registry, background_poll: bool = True, **overrides: Any) -> TestClient:
        settings = make_settings(**overrides)
        app = create_app(settings, ModelStore(settings, source), background_poll=background_poll)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    """A client of the app serving version 1 of the fake registry."""
    return make_client()


@pytest.fixture(scope="session")
def task_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wine (multi-class: logistic regression, random forest) and diabetes (regression: ridge), saved once."""
    return save_task_models(tmp_path_factory.mktemp("task_models"))


@dataclass
class FleetWorld:
    """A fake registry per registered model, a fake catalog listing them, and the clients built on them."""

    registries: dict[str, FakeRegistry]
    catalog: FakeCatalog
    make: Callable[..., TestClient]

    def fleet(self, client: TestClient) -> ModelFleet:
        """The fleet behind ``client``."""
        fleet: ModelFleet = client.app.state.fleet  # type: ignore[attr-defined]
        return fleet


@pytest.fixture
def fleet_world(model_dirs: dict[str, Path], task_model_dirs: dict[str, Path]) -> Iterator[FleetWorld]:
    """Three models: breast_cancer (the default, ``test_model``), wine and diabetes, each with a champion."""
    registries = {
        "test_model": FakeRegistry("test_model"),
        "wine_classifier": FakeRegistry("wine_classifier"),
        "diabetes_regressor": FakeRegistry("diabetes_regressor"),
    }
    registries["test_model"].publish("1", model_dirs["bc_logreg"])
    registries["wine_classifier"].publish("1", task_model_dirs["wine"])
    registries["diabetes_regressor"].publish("1", task_model_dirs["diabetes"])
    catalog = FakeCatalog(
        [
            CatalogEntry("breast_cancer", "test_model", "binary", "1"),
            CatalogEntry("wine", "wine_classifier", "multiclass", "1"),
            CatalogEntry("diabetes", "diabetes_regressor", "regression", "1"),
        ]
    )
    clients: list[TestClient] = []

    def make(list_cache: Any = lambda _: [], **overrides: Any) -> TestClient:
        settings = make_settings(**overrides)
        fleet = ModelFleet(
            settings,
            catalog=catalog,
            store_factory=lambda s: ModelStore(s, registries[s.model_name]),
            list_cache=list_cache,
        )
        client = TestClient(create_app(settings, fleet=fleet), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        assert fleet.wait_for_discovery(30)
        return client

    yield FleetWorld(registries, catalog, make)
    for client in clients:
        client.__exit__(None, None, None)
