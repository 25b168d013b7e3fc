"""The API as a real uvicorn process against a real MLflow server whose champion the real pipeline produced."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.registry_client import MlflowRegistry
from api.settings import ApiSettings
from tests.datasets import MIXED_RECORD, breast_cancer_record, mixed_frame, mixed_spec
from tests.integration.api.api_stack import train_champion
from tests.integration.api.conftest import ADMIN_KEY, CHAMPION_MODEL, StartApi
from tests.support.mlflow_server import RegistryStack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_rest_shapes_of_the_real_mlflow_server(
    registry_stack: RegistryStack, champion: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, registry_stack.env[key])  # boto3 reads its keys from the environment
    settings = ApiSettings(tracking_uri=registry_stack.mlflow_url, model_name=CHAMPION_MODEL)
    client = MlflowRegistry(settings)
    ref = client.resolve()
    assert ref.version == champion["decision"]["version"]
    assert ref.source == f"models:/{champion['model_id']}" and ref.model_id == champion["model_id"]
    assert ref.run_id == champion["run_id"]
    assert ref.artifact_uri.startswith("mlflow-artifacts:/") and ref.artifact_uri.endswith("/artifacts")
    assert ref.tags["gate.decision"] == "promoted"
    mlmodel = client.fetch(ref, "MLmodel")
    assert b"serialization_format: skops" in mlmodel and b"dataset_spec:" in mlmodel
    proxied = client.fetch(ref, "model.skops")
    # the same file straight from S3 (the branch used when MLflow does not proxy artifacts)
    s3_uri = ref.artifact_uri.replace("mlflow-artifacts:", "s3://mlflow/artifacts")
    direct = MlflowRegistry(settings.model_copy(update={"s3_endpoint_url": registry_stack.s3_url}))
    assert direct.fetch(ref.__class__(**{**ref.__dict__, "artifact_uri": s3_uri}), "model.skops") == proxied


def test_serves_the_champion(start_api_process: StartApi, champion: dict[str, Any]) -> None:
    api = start_api_process()
    with httpx.Client(base_url=api.url, timeout=10) as http:
        ready = http.get("/ready").json()
        assert ready["ready"] is True and ready["registry"]["reachable"] is True
        assert ready["model"]["artifact_uri"].startswith("mlflow-artifacts:/")
        info = http.get("/model").json()
        assert info["version"] == champion["decision"]["version"]
        assert info["run_id"] == champion["run_id"]
        assert info["data_version"] == champion["data_version"]
        assert info["family"] == champion["family"]
        assert info["metrics"]["test"]["f1"] == pytest.approx(champion["test_metrics"]["f1"])
        assert info["dataset_spec"]["name"] == "breast_cancer"
        response = http.post("/predict", json=breast_cancer_record())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == {"name": CHAMPION_MODEL, "version": info["version"], "alias": "champion"}
        batch = http.post("/predict/batch", json={"records": [breast_cancer_record()] * 200})
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 200
        assert http.post("/predict", json={"mean_radius": -1}).status_code == 422
        assert http.post("/predict", content=b"[", headers={"content-type": "application/json"}).status_code == 422
        metrics = http.get("/metrics").text
        assert 'mlops_api_requests_total{method="POST",path="/predict",status="200"} 1.0' in metrics
        assert f'mlops_api_model_version{{model="breast_cancer"}} {float(info["version"])}' in metrics
        assert "Record" in http.get("/openapi.json").json()["components"]["schemas"]
    log_lines = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in log_lines if line.get("logger") == "api.request"]
    predicted = [r for r in requests if r["path"] == "/predict" and r["status"] == 200]
    assert predicted and all(r["model_version"] == info["version"] for r in predicted)
    assert all("latency_ms" in r for r in requests)


def test_without_a_champion_it_answers_503_with_a_hint(start_api_process: StartApi) -> None:
    api = start_api_process(model_name="api_it_nothing_registered")
    with httpx.Client(base_url=api.url, timeout=10) as http:
        response = http.post("/predict", json=breast_cancer_record())
        assert response.status_code == 503
        assert "make up" in response.json()["hint"]
        assert "api_it_nothing_registered" in response.json()["detail"]
        assert http.get("/ready").status_code == 503
        assert http.get("/health").status_code == 200


def test_new_champion_with_another_schema_is_swapped_in_without_restart(
    start_api_process: StartApi, registry_stack: RegistryStack, tmp_path: Any
) -> None:
    name = "api_it_swap"
    first = train_champion(registry_stack, name)
    api = start_api_process(model_name=name)
    http = httpx.Client(base_url=api.url, timeout=10)
    assert http.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == first["decision"]["version"]
    pid = api.proc.pid

    csv = registry_stack.root / "loan_demo.csv"
    mixed_frame().to_csv(csv, index=False)
    second = train_champion(registry_stack, name, spec_json=mixed_spec(csv).to_json())
    assert second["decision"]["promoted"], second["decision"]
    new_version = second["decision"]["version"]

    wait_until(
        lambda: http.get("/model").json()["version"] == new_version,
        30,
        interval=0.25,
        what="the poller to load the new champion",
    )
    assert api.proc.pid == pid and api.proc.poll() is None  # same process, no restart
    response = http.post("/predict", json=MIXED_RECORD)
    assert response.status_code == 200, response.text
    assert response.json()["model"]["version"] == new_version and response.json()["label"] in ("no", "yes")
    stale = http.post("/predict", json=breast_cancer_record())
    assert stale.status_code == 422 and "income" in {d["field"] for d in stale.json()["detail"]}
    schema = http.get("/openapi.json").json()["components"]["schemas"]["Record"]
    assert set(schema["properties"]) == set(MIXED_RECORD)
    assert 'mlops_api_model_checks_total{model="breast_cancer",outcome="loaded"} 2.0' in http.get("/metrics").text
    http.close()


def test_ready_while_mlflow_is_away_and_back(
    start_api_process: StartApi, registry_stack: RegistryStack, champion: dict[str, Any]
) -> None:
    api = start_api_process()
    http = httpx.Client(base_url=api.url, timeout=10)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert http.get("/ready").json()["registry"]["reachable"] is True
    registry_stack.stop_mlflow()
    try:
        wait_until(
            lambda: http.get("/ready").json()["registry"]["reachable"] is False,
            15,
            interval=0.25,
            what="/ready to notice",
        )
        ready = http.get("/ready")
        assert ready.status_code == 200
        assert "unreachable" in ready.json()["message"] and "cannot reach MLflow" in ready.json()["message"]
        assert http.post("/predict", json=breast_cancer_record()).status_code == 200  # keeps serving
        reload = http.post("/model/reload", headers=auth)
        assert reload.status_code == 503 and reload.json()["model"]["version"] == champion["decision"]["version"]
        assert 'mlops_api_registry_reachable{model="breast_cancer"} 0.0' in http.get("/metrics").text
    finally:
        registry_stack.start_mlflow()
    wait_until(
        lambda: http.get("/ready").json()["registry"]["reachable"] is True, 15, interval=0.25, what="/ready to recover"
    )
    assert http.post("/model/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert http.post("/model/reload", headers=auth).json()["outcome"] == "unchanged"
    http.close()
