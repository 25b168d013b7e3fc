"""No model (503 with a hint), hot swaps without restart (incl. a schema change), polling, and /ready."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.datasets import MIXED_RECORD, breast_cancer_record
from tests.support.waiting import wait_until
from tests.unit.api.conftest import ClientFactory
from tests.unit.api.fakes import FakeRegistry

pytestmark = pytest.mark.unit


def test_without_a_model_every_model_route_answers_503_with_a_hint(make_client: ClientFactory) -> None:
    client = make_client(source=FakeRegistry())  # empty registry: no champion
    for method, path, body in (
        ("POST", "/predict", breast_cancer_record()),
        ("POST", "/predict/batch", {"records": [breast_cancer_record()]}),
        ("GET", "/model", None),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 503, (path, response.text)
        payload = response.json()
        assert "holds the alias 'champion'" in payload["detail"]
        assert "make up" in payload["hint"] and "etl_<dataset>" in payload["hint"]
        assert response.headers["retry-after"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False and ready.json()["model"] is None
    assert "make up" in ready.json()["message"]
    # even bad input gets the 503 (no schema to check it against), never a 500
    assert client.post("/predict", content=b"{oops").status_code == 503
    docs = client.get("/openapi.json").json()
    assert "No model is loaded" in docs["components"]["schemas"]["Record"]["description"]


def test_without_mlflow_configured_the_503_says_what_to_set(make_client: ClientFactory) -> None:
    from api.main import create_app
    from api.settings import ApiSettings

    settings = ApiSettings(tracking_uri=None, model_name="m", retry_interval_s=0, poll_interval_s=0)
    with TestClient(create_app(settings, background_poll=False)) as client:
        response = client.post("/predict", json={})
        assert response.status_code == 503
        assert "MLFLOW_TRACKING_URI" in response.json()["detail"]


def test_the_first_champion_is_picked_up_by_polling(make_client: ClientFactory, model_dirs: dict[str, Path]) -> None:
    registry = FakeRegistry()
    client = make_client(source=registry, poll_interval_s=0.1, retry_interval_s=0.1)
    assert client.post("/predict", json=breast_cancer_record()).status_code == 503
    registry.publish("1", model_dirs["bc_logreg"])
    wait_until(lambda: client.get("/ready").status_code == 200, 10, interval=0.05, what="/ready to answer 200")
    assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"


def test_hot_swap_with_a_schema_change_regenerates_validation_and_docs(
    make_client: ClientFactory, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    client = make_client(poll_interval_s=0.1)
    before = client.get("/openapi.json").json()
    assert "mean_radius" in before["components"]["schemas"]["Record"]["properties"]
    assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"

    registry.publish("2", model_dirs["mixed"])  # new champion, other dataset spec
    wait_until(lambda: client.get("/model").json()["version"] == "2", 10, interval=0.05, what="version 2 to be served")

    # the new schema validates, the old records are refused with the new field names
    response = client.post("/predict", json=MIXED_RECORD)
    assert response.status_code == 200, response.text
    assert response.json()["model"]["version"] == "2"
    assert response.json()["label"] in ("no", "yes")
    stale = client.post("/predict", json=breast_cancer_record())
    assert stale.status_code == 422
    assert {"income", "mean_radius"} <= {item["field"] for item in stale.json()["detail"]}

    after = client.get("/openapi.json").json()
    record = after["components"]["schemas"]["Record"]
    assert set(record["properties"]) == set(MIXED_RECORD)
    assert record["properties"]["employment"]["enum"] == [
        "employed",
        "self_employed",
        "unemployed",
        "retired",
    ]
    assert "Generated loan defaults" in after["info"]["description"]
    assert after["components"]["schemas"]["Prediction"]["properties"]["label"]["enum"] == ["no", "yes"]
    assert client.get("/model").json()["dataset_spec"]["name"] == "loan_demo"


def test_requests_during_swaps_never_mix_models(
    make_client: ClientFactory, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    registry.publish("2", model_dirs["bc_hgb"], promote=False)
    client = make_client()
    store = client.app.state.store  # type: ignore[attr-defined]
    errors: list[str] = []
    stop = threading.Event()

    def swapper() -> None:
        version = "1"
        while not stop.is_set():
            version = "2" if version == "1" else "1"
            registry.promote(version)
            store.refresh()

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        seen = set()
        for _ in range(60):
            response = client.post("/predict", json=breast_cancer_record())
            if response.status_code != 200:
                errors.append(response.text)
            seen.add(response.json()["model"]["version"])
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert seen <= {"1", "2"}


def test_ready_reports_the_registry_going_away_and_coming_back(
    make_client: ClientFactory, registry: FakeRegistry
) -> None:
    client = make_client(poll_interval_s=0.1)
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["registry"]["reachable"] is True
    assert ready["model"]["version"] == "1" and ready["model"]["artifact_uri"].startswith("file://")

    registry.down = True
    wait_until(
        lambda: client.get("/ready").json()["registry"]["reachable"] is False,
        10,
        interval=0.05,
        what="/ready to report the registry unreachable",
    )
    response = client.get("/ready")
    assert response.status_code == 200  # still serving the model it has
    body = response.json()
    assert body["ready"] is True
    assert "unreachable" in body["message"] and "connection refused" in body["registry"]["last_error"]
    assert body["registry"]["unreachable_since"]
    assert client.post("/predict", json=breast_cancer_record()).status_code == 200

    registry.down = False
    wait_until(
        lambda: client.get("/ready").json()["registry"]["reachable"] is True,
        10,
        interval=0.05,
        what="/ready to report the registry reachable",
    )
    assert client.get("/ready").json()["registry"]["last_error"] is None


def test_an_unservable_new_version_keeps_the_old_one(
    make_client: ClientFactory, registry: FakeRegistry, tmp_path: Path
) -> None:
    client = make_client()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  sklearn:\n    serialization_format: cloudpickle\n")
    registry.publish("9", broken)
    response = client.post("/model/reload", headers={"X-API-Key": "test-admin-key"})
    assert response.status_code == 409
    assert "cloudpickle" in response.json()["detail"]
    assert response.json()["model"]["version"] == "1"
    assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"
    assert "cloudpickle" in client.get("/ready").json()["message"]


def test_a_model_whose_spec_example_breaks_its_own_rules_is_refused_not_fatal(
    make_client: ClientFactory, registry: FakeRegistry, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    import yaml

    broken = tmp_path / "bad_example"
    shutil.copytree(model_dirs["bc_logreg"], broken)
    mlmodel = yaml.safe_load((broken / "MLmodel").read_text())
    mlmodel["metadata"]["dataset_spec"]["features"][0]["example"] = 999.0  # above its maximum of 60
    (broken / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    client = make_client()
    registry.publish("5", broken)
    response = client.post("/model/reload", headers={"X-API-Key": "test-admin-key"})
    assert response.status_code == 409, response.text
    assert "could not be loaded" in response.json()["detail"]
    assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"
