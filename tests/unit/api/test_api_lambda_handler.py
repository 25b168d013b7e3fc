"""The Lambda handler: the four HTTP event kinds, errors through Lambda, and one model load per environment."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.lambda_handler import build_handler
from api.model_store import ModelStore
from tests.datasets import breast_cancer_record
from tests.unit.api.conftest import ADMIN_KEY, make_settings
from tests.unit.api.fakes import FakeRegistry
from tests.unit.api.lambda_events import EVENT_KINDS, LambdaContext, event, response_body, response_headers

pytestmark = pytest.mark.unit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture
def handler(registry: FakeRegistry) -> Handler:
    settings = make_settings()
    store = ModelStore(settings, registry)
    store.ensure_loaded()  # what the module does at cold start
    return build_handler(settings, store)


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_predict_through_each_event_kind(handler: Handler, kind: str) -> None:
    response = handler(event(kind, "POST", "/predict", breast_cancer_record()), LambdaContext())
    assert response["statusCode"] == 200, response
    body = response_body(response)
    assert body["model"] == {"name": "test_model", "version": "1", "alias": "champion"}
    assert body["label"] in ("benign", "malignant")
    assert response_headers(response)["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_validation_errors_and_gets_through_each_event_kind(handler: Handler, kind: str) -> None:
    bad = handler(event(kind, "POST", "/predict", breast_cancer_record() | {"mean_radius": 99}), LambdaContext())
    assert bad["statusCode"] == 422
    assert response_body(bad)["detail"][0]["field"] == "mean_radius"
    broken = handler(event(kind, "POST", "/predict/batch", "{not json"), LambdaContext())
    assert broken["statusCode"] == 422
    ready = handler(event(kind, "GET", "/ready"), LambdaContext())
    assert ready["statusCode"] == 200 and response_body(ready)["model"]["version"] == "1"
    metrics = handler(event(kind, "GET", "/metrics"), LambdaContext())
    assert metrics["statusCode"] == 200
    assert response_headers(metrics)["content-type"].startswith("text/plain")
    assert "mlops_api_requests_total" in metrics["body"]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_query_string_and_auth_header_through_each_event_kind(handler: Handler, kind: str) -> None:
    denied = handler(event(kind, "POST", "/model/reload"), LambdaContext())
    assert denied["statusCode"] == 401
    assert response_headers(denied)["www-authenticate"] == "Bearer"
    ok = handler(
        event(kind, "POST", "/model/reload", headers={"X-API-Key": ADMIN_KEY}, query={"force": "true"}),
        LambdaContext(),
    )
    assert ok["statusCode"] == 200, ok
    assert response_body(ok)["outcome"] == "loaded"


def test_base64_bodies_are_decoded(handler: Handler) -> None:
    for kind in ("rest_v1", "http_v2", "alb"):
        response = handler(event(kind, "POST", "/predict", breast_cancer_record(), base64_body=True), LambdaContext())
        assert response["statusCode"] == 200, (kind, response)


def test_the_model_is_loaded_once_not_per_invocation(registry: FakeRegistry) -> None:
    settings = make_settings(poll_interval_s=0.3)
    store = ModelStore(settings, registry)
    store.ensure_loaded()
    handler = build_handler(settings, store)
    fetches = registry.fetches
    for _ in range(5):
        assert (
            handler(event("http_v2", "POST", "/predict", breast_cancer_record()), LambdaContext())["statusCode"] == 200
        )
    assert registry.fetches == fetches  # Mangum ran the lifespan 5 times; nothing was downloaded again
    resolves = registry.resolves
    time.sleep(0.35)
    handler(event("http_v2", "GET", "/health"), LambdaContext())
    handler(event("http_v2", "GET", "/health"), LambdaContext())
    assert store.wait_for_check(5)
    assert registry.resolves == resolves + 1  # one alias check per poll interval, started by an invocation


def test_a_new_champion_reaches_lambda_without_a_new_environment(
    registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    settings = make_settings(poll_interval_s=0.1)
    store = ModelStore(settings, registry)
    store.ensure_loaded()
    handler = build_handler(settings, store)
    registry.publish("2", model_dirs["bc_hgb"])
    time.sleep(0.15)
    # the invocation that finds a check due starts it in the background and answers without waiting for it
    response = handler(event("function_url", "POST", "/predict", breast_cancer_record()), LambdaContext())
    assert response["statusCode"] == 200
    assert store.wait_for_check(10)
    response = handler(event("function_url", "POST", "/predict", breast_cancer_record()), LambdaContext())
    assert response_body(response)["model"]["version"] == "2"


def test_the_module_handler_starts_without_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLOPS_MODEL_NAME", "lambda_unit_test_model")
    sys.modules.pop("api.lambda_handler", None)
    module = importlib.import_module("api.lambda_handler")
    try:
        response = module.handler(event("rest_v1", "POST", "/predict", breast_cancer_record()), LambdaContext())
        assert response["statusCode"] == 503
        assert "MLFLOW_TRACKING_URI" in response_body(response)["detail"]
        assert response_body(module.handler(event("alb", "GET", "/health"), LambdaContext())) == {"status": "ok"}
    finally:
        sys.modules.pop("api.lambda_handler", None)
