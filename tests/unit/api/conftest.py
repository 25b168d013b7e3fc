"""Fixtures of the API unit tests: models saved once per session, a fake registry, and a TestClient factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.model_store import ModelStore
from api.settings import ApiSettings
from tests.datasets import breast_cancer_frame, mixed_frame, mixed_spec, save_model, typed_mixed_frame
from tests.unit.api.fakes import FakeRegistry

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
