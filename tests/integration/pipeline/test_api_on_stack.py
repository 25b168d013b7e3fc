"""The prediction API as the stack runs it: OpenAPI from the champion's spec, bad input, metrics, and a new
champion picked up without a restart.
"""

from __future__ import annotations

import httpx
from mlflow.tracking import MlflowClient

from infra import catalog
from infra.local.quickstart import sample_request, wait_until_served
from ml.settings import MLSettings
from ml.spec import get_spec

SETTINGS = MLSettings()
SPEC = get_spec(SETTINGS.dataset)


def test_openapi_documents_the_champions_features(trained_stack) -> None:
    stack, _ = trained_stack
    schema = httpx.get(stack.url(catalog.API, "/openapi.json"), timeout=10).json()
    text = str(schema)
    for feature in SPEC.features:
        assert feature.name in text
    assert SPEC.features[0].description in text


def test_bad_input_is_a_422_naming_the_field(trained_stack) -> None:
    stack, _ = trained_stack
    url = stack.url(catalog.API, "/predict")
    record = sample_request(SETTINGS)
    out_of_range = record | {"mean_radius": 10_000}
    missing = {k: v for k, v in record.items() if k != "worst_area"}
    wrong_type = record | {"mean_texture": "soft"}
    for body, field in ((out_of_range, "mean_radius"), (missing, "worst_area"), (wrong_type, "mean_texture")):
        response = httpx.post(url, json=body, timeout=10)
        assert response.status_code == 422, response.text
        assert field in response.json()["message"]
    malformed = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert malformed.status_code == 422
    empty = httpx.post(stack.url(catalog.API, "/predict/batch"), json={"records": []}, timeout=10)
    assert empty.status_code == 422


def test_metrics_count_predictions(trained_stack) -> None:
    stack, result = trained_stack
    httpx.post(stack.url(catalog.API, "/predict"), json=sample_request(SETTINGS), timeout=10)
    metrics = httpx.get(stack.url(catalog.API, "/metrics"), timeout=10).text
    assert "predictions" in metrics and f'version="{result.champion_version}"' in metrics


def test_a_new_champion_is_served_without_restart(trained_stack) -> None:
    stack, result = trained_stack
    client = MlflowClient(tracking_uri=stack.url(catalog.MLFLOW))
    name = SPEC.registered_model
    current = client.get_model_version(name, result.champion_version)
    pid_before = stack.status()["services"][catalog.API]["pid"]
    # promote a new version (same model artifact, registered again) by moving the alias, as the gate does
    model_id = current.source.removeprefix("models:/")
    new = client.create_model_version(
        name, current.source, run_id=current.run_id, tags={"test": "hot-swap"}, model_id=model_id
    )
    client.set_registered_model_alias(name, "champion", new.version)
    try:
        wait_until_served(stack, str(new.version))
        answer = httpx.post(stack.url(catalog.API, "/predict"), json=sample_request(SETTINGS), timeout=10).json()
        assert answer["model"]["version"] == str(new.version)
        assert stack.status()["services"][catalog.API]["pid"] == pid_before  # no restart
    finally:
        client.set_registered_model_alias(name, "champion", result.champion_version)
        wait_until_served(stack, result.champion_version)
