"""Predictions: one record, a batch, and that they match the model's own predict_proba."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io
from fastapi.testclient import TestClient

from tests.datasets import MIXED_RECORD, breast_cancer_frame, breast_cancer_record
from tests.unit.api.conftest import ClientFactory
from tests.unit.api.fakes import FakeRegistry

pytestmark = pytest.mark.unit


def _estimator(model_dir: Path) -> object:
    data = (model_dir / "model.skops").read_bytes()
    return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))


def test_predict_one_record(client: TestClient, model_dirs: dict[str, Path]) -> None:
    response = client.post("/predict", json=breast_cancer_record())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "test_model", "version": "1", "alias": "champion"}
    assert body["class"] in (0, 1)
    assert body["label"] == ("malignant" if body["class"] == 1 else "benign")
    assert body["probability"] == pytest.approx(body["probabilities"][body["label"]])
    assert body["probability"] >= 0.5
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    spec, _ = breast_cancer_frame()
    x = np.array([[breast_cancer_record()[n] for n in spec.feature_names]])
    expected = _estimator(model_dirs["bc_logreg"]).predict_proba(x)[0]  # type: ignore[attr-defined]
    assert body["probabilities"]["malignant"] == pytest.approx(expected[1])
    assert response.headers["content-type"] == "application/json"


def test_predict_batch_keeps_order_and_matches_the_model(client: TestClient, model_dirs: dict[str, Path]) -> None:
    spec, frame = breast_cancer_frame()
    rows = frame[spec.feature_names].head(40)
    records = rows.to_dict(orient="records")
    response = client.post("/predict/batch", json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == "1"
    assert len(body["predictions"]) == 40
    expected = _estimator(model_dirs["bc_logreg"]).predict_proba(rows.to_numpy(dtype=float))  # type: ignore[attr-defined]
    got = np.array([p["probabilities"]["malignant"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected[:, 1])
    labels = [p["label"] for p in body["predictions"]]
    truth = frame[spec.target.name].head(40).tolist()
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 36  # a real model, not noise


def test_integers_are_accepted_for_numeric_features(client: TestClient) -> None:
    record = breast_cancer_record() | {"mean_area": 551}
    assert client.post("/predict", json=record).status_code == 200


def test_mixed_spec_with_missing_values(
    make_client: ClientFactory, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    registry.publish("7", model_dirs["mixed"])
    client = make_client()
    assert client.post("/predict", json=MIXED_RECORD).status_code == 200
    # nullable features may be null or left out; the model imputes them
    sparse = {"income": 900, "employment": "unemployed", "owns_home": False, "age": None}
    response = client.post("/predict", json=sparse)
    assert response.status_code == 200, response.text
    assert response.json()["label"] in ("no", "yes")
    assert response.json()["model"]["version"] == "7"
    batch = client.post("/predict/batch", json={"records": [MIXED_RECORD, sparse, MIXED_RECORD | {"region": None}]})
    assert batch.status_code == 200, batch.text
    assert [p["label"] for p in batch.json()["predictions"]][1] == "yes"  # low income and unemployed


def test_gradient_boosting_model_needs_the_types_listed_in_mlmodel(
    make_client: ClientFactory, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    mlmodel = (model_dirs["bc_hgb"] / "MLmodel").read_text()
    assert "TreePredictor" in mlmodel  # MLflow records the non-default types skops must trust
    registry.publish("2", model_dirs["bc_hgb"])
    client = make_client()
    response = client.post("/predict", json=breast_cancer_record())
    assert response.status_code == 200, response.text
    assert response.json()["model"]["version"] == "2"
