"""Fixtures for the ML library's unit tests: moto's S3 server and a real MLflow tracking server (SQLite)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pytest

from ml.contracts import SearchResult, SplitManifest
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import build_pipeline, to_matrix, to_target
from ml.search import skops_trusted_types
from ml.settings import MLSettings
from ml.spec import DatasetSpec, TrainingSpec
from tests.support.mlflow_server import start_mlflow_server
from tests.support.moto_s3 import running_moto_s3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's in-process S3 server (fast, in memory, accepts any key): unit tests only."""
    with running_moto_s3() as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` process with a SQLite backend and local artifacts (proxied)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), timeout=90)
    yield server.url
    server.stop()


@pytest.fixture
def ml_env(
    s3_server: str, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> MLSettings:
    """Environment for one test: its own bucket and Optuna SQLite file (see :func:`isolated` for the model)."""
    name = request.node.name.replace("[", "_").replace("]", "").lower()[:40]
    values = {
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLOPS_LAKE_BUCKET": f"lake-{abs(hash(name)) % 10**8}",
        "MLOPS_OPTUNA_STORAGE": f"sqlite:///{tmp_path}/optuna.db",
        "MLOPS_N_TRIALS": "6",
        "MLOPS_CV_FOLDS": "3",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    # An earlier test may have set a process-wide tracking URI, which wins over the environment.
    mlflow.set_tracking_uri(mlflow_server)
    return MLSettings()


def isolated(spec: DatasetSpec, **training: Any) -> DatasetSpec:
    """``spec`` with a registered model of its own, so tests sharing the MLflow server do not meet.

    ``training`` overrides the spec's training section (metric, min_champion_score, promotion_margin).
    """
    update: dict[str, Any] = {"model_name": f"{spec.name}_model_{time.time_ns()}"}
    if training:
        update["training"] = TrainingSpec(**(spec.training.model_dump(exclude_unset=True) | training))
    return spec.model_copy(update=update)


@pytest.fixture
def lake(ml_env: MLSettings) -> Lake:
    """An empty lake bucket for one test."""
    lake = Lake.from_env(ml_env.lake_bucket)
    lake.ensure_bucket()
    return lake


def logged(spec: DatasetSpec, lake: Lake, manifest: SplitManifest, estimator, family: str) -> SearchResult:
    """Fit and log a model the way the search does, returning a search-like result."""
    train, _, _ = load_split(spec, lake)
    model = build_pipeline(spec, estimator).fit(to_matrix(train, spec), to_target(train, spec))
    mlflow.set_experiment("logged-models")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", skops_trusted_types=skops_trusted_types(model),
            metadata={"dataset_spec": json.loads(spec.to_json()), "data_version": manifest.data_version},
        )  # fmt: skip
    return SearchResult(
        model_uri=info.model_uri, model_id=info.model_id, run_id=run.info.run_id,
        data_version=manifest.data_version, family=family, best_params={"family": family}, cv_score=0.0,
        test_metrics={},
    )  # fmt: skip
