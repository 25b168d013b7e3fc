"""The authenticated reload endpoint, Prometheus metrics, the JSON request log and the generated docs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.logs import JsonFormatter
from tests.datasets import breast_cancer_record
from tests.unit.api.conftest import ADMIN_KEY, ClientFactory
from tests.unit.api.fakes import FakeRegistry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {ADMIN_KEY}"}, 401),
        ({"X-API-Key": ADMIN_KEY}, 200),
        ({"Authorization": f"Bearer {ADMIN_KEY}"}, 200),
        ({"Authorization": f"Bearer {ADMIN_KEY}", "X-API-Key": ADMIN_KEY}, 200),
        ({"Authorization": "Basic d3Jvbmc6d3Jvbmc=", "X-API-Key": ADMIN_KEY}, 401),
        ({"Authorization": "Bearer wrong", "X-API-Key": ADMIN_KEY}, 401),
        ({"Authorization": f"Bearer {ADMIN_KEY}", "X-API-Key": "wrong"}, 401),
        ({"X-API-Key": ""}, 401),
    ],
    ids=[
        "no key",
        "wrong api key",
        "wrong bearer",
        "wrong scheme",
        "api key",
        "bearer",
        "both right",
        "right api key with another scheme",
        "right api key with a wrong bearer",
        "right bearer with a wrong api key",
        "empty api key",
    ],
)
def test_reload_requires_the_admin_key(client: TestClient, headers: dict[str, str], status: int) -> None:
    response = client.post("/model/reload", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "admin key" in response.json()["detail"]
    else:
        assert response.json()["outcome"] == "unchanged"


def test_reload_is_disabled_without_a_configured_key(make_client: ClientFactory) -> None:
    client = make_client(admin_key=None)
    response = client.post("/model/reload", headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert "MLOPS_API_ADMIN_KEY" in response.json()["detail"]


def test_reload_swaps_a_new_champion_and_reports_failures(
    client: TestClient, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    auth = {"X-API-Key": ADMIN_KEY}
    registry.publish("2", model_dirs["bc_hgb"])
    response = client.post("/model/reload", headers=auth)
    assert response.status_code == 200
    assert response.json()["outcome"] == "loaded"
    assert response.json()["model"]["version"] == "2" and response.json()["previous"]["version"] == "1"
    assert client.post("/model/reload?force=true", headers=auth).json()["outcome"] == "loaded"
    assert client.post("/model/reload?force=maybe", headers=auth).status_code == 422
    registry.down = True
    failed = client.post("/model/reload", headers=auth)
    assert failed.status_code == 503
    assert failed.json()["outcome"] == "failed" and failed.json()["model"]["version"] == "2"
    registry.down = False
    registry.alias_version = None
    assert client.post("/model/reload", headers=auth).status_code == 404


def test_metrics_count_requests_latencies_classes_and_the_model(
    client: TestClient, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    record = breast_cancer_record()
    for _ in range(3):
        assert client.post("/predict", json=record).status_code == 200
    label = client.post("/predict", json=record).json()["label"]
    client.post("/predict/batch", json={"records": [record] * 5})
    client.post("/predict", json={})
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'mlops_api_requests_total{method="POST",path="/predict",status="200"} 4.0' in text
    assert 'mlops_api_requests_total{method="POST",path="/predict",status="422"} 1.0' in text
    assert 'mlops_api_requests_total{method="GET",path="other",status="404"} 1.0' in text
    assert 'mlops_api_request_duration_seconds_count{path="/predict"} 5.0' in text
    assert 'mlops_api_request_duration_seconds_bucket{le="0.001",path="/predict"}' in text
    assert f'mlops_api_predictions_total{{label="{label}",model="breast_cancer"}} 9.0' in text
    assert 'mlops_api_model_version{model="breast_cancer"} 1.0' in text
    assert (
        'mlops_api_model_info{alias="champion",model="breast_cancer",model_id="m-1",name="test_model",'
        'run_id="run-1",version="1"} 1.0' in text
    )
    assert 'mlops_api_model_loaded{model="breast_cancer"} 1.0' in text
    assert 'mlops_api_registry_reachable{model="breast_cancer"} 1.0' in text
    assert 'mlops_api_model_checks_total{model="breast_cancer",outcome="loaded"} 1.0' in text

    registry.publish("2", model_dirs["bc_hgb"])
    client.post("/model/reload", headers={"X-API-Key": ADMIN_KEY})
    text = client.get("/metrics").text
    assert 'mlops_api_model_version{model="breast_cancer"} 2.0' in text
    assert 'version="1"' not in text.split("mlops_api_model_info", 1)[1].split("# HELP", 1)[0]


def test_one_json_log_line_per_request_with_latency_and_model_version(client: TestClient) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("api.request")
    logger.addHandler(handler)
    try:
        client.post("/predict", json=breast_cancer_record())
        client.post("/predict/batch", json={"records": [breast_cancer_record()] * 3})
        client.post("/predict", json={"mean_radius": "x"})
        client.get("/health")
    finally:
        logger.removeHandler(handler)
    assert len(lines) == 4
    docs = [json.loads(line) for line in lines]
    assert [d["path"] for d in docs] == ["/predict", "/predict/batch", "/predict", "/health"]
    assert [d["status"] for d in docs] == [200, 200, 422, 200]
    assert all(d["model_version"] == "1" and d["latency_ms"] > 0 and d["level"] == "INFO" for d in docs)
    assert docs[1]["records"] == 3
    assert docs[0]["ts"].endswith("Z")


def test_docs_describe_the_served_model(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert len(record["properties"]) == 30
    radius = record["properties"]["mean_radius"]
    assert radius["type"] == "number"
    assert radius["minimum"] == 0 and radius["maximum"] == 60
    assert radius["x-unit"] == "px" and "Unit: px" in radius["description"]
    assert radius["examples"] == [13.37]
    assert "nucleus centre" in radius["description"]
    assert set(record["required"]) == set(record["properties"])
    assert record["additionalProperties"] is False
    assert record["examples"][0]["mean_radius"] == 13.37
    batch = doc["components"]["schemas"]["BatchRequest"]
    assert batch["properties"]["records"]["maxItems"] == 50
    predict = doc["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Record"}
    assert {"200", "422", "503"} <= set(predict["responses"])
    assert "version **1**" in doc["info"]["description"]
    assert client.get("/docs").status_code == 200
