"""The platform's main job, end to end on an isolated stack: both DAGs through Airflow's REST API, the
data in S3, the search in MLflow, the champion in the registry and served by the API; then down/up keeps
all of it.
"""

from __future__ import annotations

import boto3
import httpx
import pytest
from botocore.config import Config
from mlflow.tracking import MlflowClient

from infra import catalog
from infra.local import Stack
from infra.local.quickstart import QuickstartResult, champion_version, sample_request
from ml.settings import MLSettings
from ml.tracking import child_runs

SETTINGS = MLSettings()
DATASET = SETTINGS.dataset


def s3(stack: Stack):
    env = stack.client_env()
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )


def keys(stack: Stack, prefix: str) -> list[str]:
    pages = s3(stack).get_paginator("list_objects_v2").paginate(Bucket=catalog.LAKE_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def runs(airflow, dag_id: str) -> list[tuple[str, str]]:
    return [(r["dag_run_id"], r["state"]) for r in airflow.list_dag_runs(dag_id)]


@pytest.fixture(scope="module")
def mlflow_client(trained_stack: tuple[Stack, QuickstartResult]) -> MlflowClient:
    stack, _ = trained_stack
    return MlflowClient(tracking_uri=stack.url(catalog.MLFLOW))


def test_both_dags_succeeded_through_the_rest_api(trained_stack) -> None:
    _, result = trained_stack
    assert [(r.dag_id, r.state) for r in result.runs] == [("mlops_etl", "success"), ("mlops_training", "success")]


def test_processed_parquet_and_manifests_are_in_the_lake(trained_stack) -> None:
    stack, _ = trained_stack
    raw = keys(stack, f"raw/{DATASET}/")
    assert any(k.endswith("/data.csv") for k in raw) and any(k.endswith("/manifest.json") for k in raw)
    processed = keys(stack, f"processed/{DATASET}/")
    for name in ("train.parquet", "test.parquet", "manifest.json"):
        assert any(k.endswith(f"/{name}") for k in processed), processed
    assert f"processed/{DATASET}/current.json" in processed
    assert any(k.endswith("/report.json") for k in keys(stack, f"validated/{DATASET}/"))


def test_one_parent_run_with_a_child_per_trial(trained_stack, mlflow_client: MlflowClient) -> None:
    experiment = mlflow_client.get_experiment_by_name(str(SETTINGS.experiment))
    parents = mlflow_client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'search'")
    assert len(parents) == 1
    parent = parents[0]
    children = child_runs(mlflow_client, parent.info.run_id)
    assert len(children) == SETTINGS.n_trials == int(parent.data.params["n_trials"])
    assert {c.data.tags["worker"] for c in children} == {str(w) for w in range(SETTINGS.tuning_workers)}
    figures = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id, "figures")}
    assert len(figures) == 4


def test_champion_is_registered_and_passes_the_threshold(trained_stack, mlflow_client: MlflowClient) -> None:
    _, result = trained_stack
    version = mlflow_client.get_model_version_by_alias(str(SETTINGS.model_name), "champion")
    assert version.version == result.champion_version
    assert version.tags["gate.decision"] == "promoted"
    metrics = mlflow_client.get_run(version.run_id).data.metrics
    assert metrics["test_f1"] >= SETTINGS.min_champion_score
    assert float(version.tags["gate.challenger_score"]) >= SETTINGS.min_champion_score
    print(f"champion v{version.version}: test F1 {metrics['test_f1']:.4f}, ROC AUC {metrics['test_roc_auc']:.4f}")


def test_the_api_predicts_with_that_champion(trained_stack) -> None:
    stack, result = trained_stack
    assert result.prediction["response"]["model"] == {
        "name": SETTINGS.model_name, "version": result.champion_version, "alias": "champion",
    }  # fmt: skip
    answer = httpx.post(stack.url(catalog.API, "/predict"), json=sample_request(SETTINGS), timeout=10).json()
    assert answer["model"]["version"] == result.champion_version
    assert answer["label"] in ("benign", "malignant") and 0.5 <= answer["probability"] <= 1


def test_down_then_up_keeps_everything(trained_stack, mlflow_client: MlflowClient) -> None:
    stack, result = trained_stack
    experiment = mlflow_client.get_experiment_by_name(str(SETTINGS.experiment))
    runs_before = len(mlflow_client.search_runs([experiment.experiment_id], max_results=1000))
    lake_before = keys(stack, "")
    with stack.airflow() as af:
        dag_runs_before = {d: runs(af, d) for d in ("mlops_etl", "mlops_training")}

    stack.down()
    assert not stack.is_running()
    stack.up()

    assert champion_version(stack, str(SETTINGS.model_name)) == result.champion_version
    assert len(mlflow_client.search_runs([experiment.experiment_id], max_results=1000)) == runs_before
    assert keys(stack, "") == lake_before
    with stack.airflow() as af:
        for dag_id, before in dag_runs_before.items():
            assert runs(af, dag_id) == before
    # the restarted API loads the same champion from the registry by itself
    from infra.local.pipeline import wait_for_http

    served = wait_for_http(stack.url(catalog.API, "/model"), lambda r: r.status_code == 200, timeout=120)
    assert served.json()["version"] == result.champion_version
