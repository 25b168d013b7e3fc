"""The platform's main job, end to end on an isolated stack, for every active dataset: each DAG pair through
Airflow's REST API, the data in S3, the search in MLflow, one champion per dataset in the registry, all served
side by side by the API; one model's new champion swaps in while the others keep serving; down/up keeps all.
"""

from __future__ import annotations

import boto3
import httpx
import pytest
from botocore.config import Config
from mlflow.tracking import MlflowClient

from dags.pipeline_ids import pipeline, processed_asset_name
from infra import catalog
from infra.local import Stack
from infra.local.quickstart import QuickstartResult, champion_version, sample_request, wait_until_served
from ml.contracts import DATASET_TAG, GateTags, RegisteredModelTags
from ml.settings import MLSettings
from ml.spec import get_spec
from ml.tracking import child_runs
from tests.integration.conftest import TRIAL_BUDGET

SETTINGS = MLSettings()
DATASETS = SETTINGS.active_datasets()
SPECS = {d: get_spec(d) for d in DATASETS}


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


def served_versions(stack: Stack) -> dict[str, str | None]:
    listing = httpx.get(stack.url(catalog.API, "/models"), timeout=10).json()
    return {m["name"]: m["version"] and str(m["version"]) for m in listing["models"]}


@pytest.fixture(scope="module")
def mlflow_client(trained_stack: tuple[Stack, QuickstartResult]) -> MlflowClient:
    stack, _ = trained_stack
    return MlflowClient(tracking_uri=stack.url(catalog.MLFLOW))


def test_every_dag_pair_succeeded_through_the_rest_api(trained_stack) -> None:
    stack, result = trained_stack
    assert len(DATASETS) >= 3  # binary, multiclass and regression specs ship
    expected = [(dag_id, "success") for d in DATASETS for dag_id in pipeline(d)]
    assert [(r.dag_id, r.state) for r in result.runs] == expected
    for run in result.runs:
        if run.dag_id.startswith("training_"):
            assert run.run_id.startswith("asset_triggered__"), run  # scheduled by its own Asset
    with stack.airflow() as af:
        assert af.import_errors() == []


@pytest.mark.parametrize("dataset", DATASETS)
def test_processed_parquet_and_manifests_are_in_the_lake(trained_stack, dataset: str) -> None:
    stack, _ = trained_stack
    raw = keys(stack, f"raw/{dataset}/")
    assert any(k.endswith("/data.csv") for k in raw) and any(k.endswith("/manifest.json") for k in raw)
    processed = keys(stack, f"processed/{dataset}/")
    for name in ("train.parquet", "test.parquet", "manifest.json"):
        assert any(k.endswith(f"/{name}") for k in processed), processed
    assert f"processed/{dataset}/current.json" in processed
    assert any(k.endswith("/report.json") for k in keys(stack, f"validated/{dataset}/"))
    assert processed_asset_name(dataset) == f"processed_{dataset}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_one_parent_run_with_a_child_per_trial(trained_stack, mlflow_client: MlflowClient, dataset: str) -> None:
    experiment = mlflow_client.get_experiment_by_name(SPECS[dataset].name)  # each dataset's own experiment
    parents = mlflow_client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'search'")
    assert len(parents) == 1
    parent = parents[0]
    children = child_runs(mlflow_client, parent.info.run_id)
    assert len(children) == TRIAL_BUDGET == int(parent.data.params["n_trials"])
    # Every trial names the mapped tune task that ran it. Not necessarily both: with three searches on two
    # cores, one worker may use up a 16-trial budget before the other's task starts (nothing is lost).
    workers = {c.data.tags["worker"] for c in children}
    assert workers and workers <= {str(w) for w in range(SETTINGS.tuning_workers)}
    assert mlflow_client.list_artifacts(parent.info.run_id, "figures")


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_has_its_champion_registered_with_aliases(
    trained_stack, mlflow_client: MlflowClient, dataset: str
) -> None:
    _, result = trained_stack
    spec = SPECS[dataset]
    report = result.models[dataset]
    assert report.champion is not None, report.line()
    version = mlflow_client.get_model_version_by_alias(spec.registered_model, "champion")
    assert version.version == report.champion
    assert "challenger" not in mlflow_client.get_registered_model(spec.registered_model).aliases  # promoted
    gate = GateTags.from_tags(version.tags)
    assert gate.promoted and gate.metric == spec.metric.name
    assert spec.metric.meets(gate.challenger_score, spec.min_champion_score)
    registered = RegisteredModelTags.from_tags(mlflow_client.get_registered_model(spec.registered_model).tags)
    assert (registered.dataset, str(registered.task)) == (dataset, spec.task.value)  # how the API discovers it
    metrics = mlflow_client.get_run(version.run_id).data.metrics
    assert report.test_score == pytest.approx(metrics[f"test_{spec.metric.name}"])
    assert report.line().startswith(dataset) and f"v{report.champion} champion" in report.line()


def test_the_api_serves_every_champion_side_by_side(trained_stack) -> None:
    stack, result = trained_stack
    assert served_versions(stack) == {d: result.models[d].champion for d in DATASETS}
    for dataset, spec in SPECS.items():
        done = result.predictions[dataset]
        assert f"/models/{dataset}/predict" in done["command"]
        answer = httpx.post(
            stack.url(catalog.API, f"/models/{dataset}/predict"), json=spec.example_record(), timeout=10
        )
        assert answer.status_code == 200, answer.text
        model = answer.json()["model"]
        assert (model["name"], str(model["version"])) == (spec.registered_model, result.models[dataset].champion)
        assert ("label" in answer.json()) == spec.task.is_classification


def test_the_unnamed_routes_serve_the_default_model(trained_stack) -> None:
    stack, result = trained_stack
    default = SPECS[SETTINGS.dataset]
    assert result.champion_version == result.models[SETTINGS.dataset].champion
    assert result.prediction["response"]["model"] == {
        "name": default.registered_model, "version": result.champion_version, "alias": "champion",
    }  # fmt: skip
    answer = httpx.post(stack.url(catalog.API, "/predict"), json=sample_request(SETTINGS), timeout=10).json()
    assert answer["model"]["version"] == result.champion_version


def test_a_new_champion_of_one_model_swaps_in_while_the_others_keep_serving(
    trained_stack, mlflow_client: MlflowClient
) -> None:
    stack, result = trained_stack
    swapped = next(d for d in DATASETS if d != SETTINGS.dataset)
    spec = SPECS[swapped]
    before = served_versions(stack)
    current = mlflow_client.get_model_version(spec.registered_model, result.models[swapped].champion)
    new = mlflow_client.create_model_version(
        spec.registered_model, current.source, run_id=current.run_id, tags={"test": "hot-swap"},
        model_id=current.source.removeprefix("models:/"),
    )  # fmt: skip
    mlflow_client.set_registered_model_alias(spec.registered_model, "champion", new.version)
    try:
        wait_until_served(stack, str(new.version), swapped)
        assert served_versions(stack) == before | {swapped: str(new.version)}
        for dataset, other in SPECS.items():
            answer = httpx.post(stack.url(catalog.API, f"/models/{dataset}/predict"), json=other.example_record())
            assert answer.status_code == 200, (dataset, answer.text)
            assert str(answer.json()["model"]["version"]) == (
                str(new.version) if dataset == swapped else before[dataset]
            )
    finally:
        mlflow_client.set_registered_model_alias(spec.registered_model, "champion", result.models[swapped].champion)
        wait_until_served(stack, str(result.models[swapped].champion), swapped)


def test_a_model_untagged_in_the_registry_is_retired_and_comes_back(trained_stack, mlflow_client: MlflowClient) -> None:
    """The API serves what the registry lists: a registered model without its dataset tag is retired (404)."""
    stack, result = trained_stack
    retired = next(d for d in DATASETS if d != SETTINGS.dataset)
    name = SPECS[retired].registered_model
    url = stack.url(catalog.API, f"/models/{retired}/predict")
    body = SPECS[retired].example_record()
    from infra.local.pipeline import wait_for_http

    mlflow_client.delete_registered_model_tag(name, DATASET_TAG)
    try:
        # within one discovery interval (MLOPS_API_POLL_INTERVAL_S, 30 s)
        wait_for_http(stack.url(catalog.API, f"/models/{retired}"), lambda r: r.status_code == 404, timeout=90)
        answer = httpx.post(url, json=body)
        assert answer.status_code == 404 and retired not in answer.json()["models"], answer.text
        assert retired not in served_versions(stack)
        others = [d for d in DATASETS if d != retired]
        for dataset in others:
            answer = httpx.post(
                stack.url(catalog.API, f"/models/{dataset}/predict"), json=SPECS[dataset].example_record()
            )
            assert answer.status_code == 200, (dataset, answer.text)
        assert f"/models/{retired}/predict" not in httpx.get(stack.url(catalog.API, "/openapi.json")).json()["paths"]
    finally:
        mlflow_client.set_registered_model_tag(name, DATASET_TAG, retired)
        wait_until_served(stack, str(result.models[retired].champion), retired)
    assert httpx.post(url, json=body).status_code == 200


def test_down_then_up_keeps_everything(trained_stack, mlflow_client: MlflowClient) -> None:
    stack, result = trained_stack
    experiments = [mlflow_client.get_experiment_by_name(spec.name).experiment_id for spec in SPECS.values()]
    runs_before = len(mlflow_client.search_runs(experiments, max_results=5000))
    lake_before = keys(stack, "")
    dag_ids = [dag_id for d in DATASETS for dag_id in pipeline(d)]
    with stack.airflow() as af:
        dag_runs_before = {d: runs(af, d) for d in dag_ids}

    stack.down()
    assert not stack.is_running()
    stack.up()

    for dataset, spec in SPECS.items():
        assert champion_version(stack, spec.registered_model) == result.models[dataset].champion
    assert len(mlflow_client.search_runs(experiments, max_results=5000)) == runs_before
    assert keys(stack, "") == lake_before
    with stack.airflow() as af:
        for dag_id, before in dag_runs_before.items():
            assert runs(af, dag_id) == before
    # the restarted API loads every champion by itself (champion cache, then the registry)
    from infra.local.pipeline import wait_for_http

    expected = {d: result.models[d].champion for d in DATASETS}
    wait_for_http(
        stack.url(catalog.API, "/models"),
        lambda r: (
            r.status_code == 200
            and {m["name"]: m["version"] and str(m["version"]) for m in r.json()["models"]} == expected
        ),
        timeout=180,
    )


def _records(frame, spec) -> list[dict]:
    """Rows of a split as JSON records (None for missing values, ints for integer features)."""
    records = frame[spec.feature_names].astype(object).where(frame[spec.feature_names].notna(), None)
    integer = [f.name for f in spec.features if f.kind.value == "integer"]
    rows = records.to_dict("records")
    for row in rows:
        for name in integer:
            row[name] = None if row[name] is None else int(row[name])
    return rows


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_model_answers_what_its_registered_champion_predicts(
    trained_stack, monkeypatch: pytest.MonkeyPatch, dataset: str
) -> None:
    """The API's batch answer for the test split equals the champion's own predictions, loaded from MLflow."""
    import mlflow
    import mlflow.sklearn

    from ml.etl.split import load_split
    from ml.lake import Lake

    stack, _ = trained_stack
    spec = SPECS[dataset]
    for key, value in stack.client_env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(stack.url(catalog.MLFLOW))
    model = mlflow.sklearn.load_model(f"models:/{spec.registered_model}@champion")
    _, test, _ = load_split(spec, Lake.from_env(SETTINGS.lake_bucket))
    test = test.head(40)
    answer = httpx.post(
        stack.url(catalog.API, f"/models/{dataset}/predict/batch"), json={"records": _records(test, spec)}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]
    assert len(served) == len(test)
    x = test[spec.feature_names]
    if spec.task.is_classification:
        labels = spec.target.labels
        expected = model.predict_proba(x)
        for row, probabilities in zip(served, expected, strict=True):
            assert row["probabilities"] == pytest.approx(dict(zip(labels, probabilities, strict=True)), abs=1e-9)
            assert row["label"] == labels[int(probabilities.argmax())]
    else:
        assert [row["value"] for row in served] == pytest.approx(list(model.predict(x)), rel=1e-9, abs=1e-9)


def test_an_unknown_model_is_a_404_that_lists_the_models(trained_stack) -> None:
    stack, _ = trained_stack
    answer = httpx.post(stack.url(catalog.API, "/models/no_such_model/predict"), json={}, timeout=10)
    assert answer.status_code == 404
    body = answer.json()
    assert set(body["models"]) >= set(DATASETS) and all(d in body["detail"] for d in DATASETS)
