"""The Pulumi program applied to a real Docker engine: build, start, train, serve, restart, destroy.

One deployment of ``infra/__main__.py`` with ``Pulumi.dev.yaml`` (name prefix and host ports overridden for
isolation, the training trigger turned on) serves every test of this module; the destroy test comes last
(``DockerStack.ensure_up`` re-applies the program if a test needs the stack after it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import psycopg2
import pytest

from dags.pipeline_ids import pipeline
from infra import access, catalog
from infra.components.services import BUILT_IMAGES
from ml.spec import get_spec
from tests.docker import figures
from tests.docker.docker_stack import PREFIX, REPO, DockerStack
from tests.docker.engine import Engine

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

JOBS = ("postgres-roles", "s3-buckets", "s3-users", "mlflow-users", "airflow-migrate")
ADMIN_JOBS = ("postgres-roles", "s3-users", "mlflow-users")  # run again by every `pulumi up`


@pytest.fixture(scope="module")
def stack(engine: Engine, standins: Any) -> Iterator[DockerStack]:
    """The program's stack, up and healthy; destroyed at the end whatever happens."""
    s = DockerStack(engine.client, engine.cli, log=lambda msg: print(f"[replay] {msg}", flush=True))
    s.ensure_up()
    try:
        yield s
    finally:
        figures.record("Docker stack", s.figures)
        if s.deployment is not None:
            s.destroy()


@pytest.fixture(scope="module")
def trained(stack: DockerStack) -> dict[str, Any]:
    """The stack after the program's training trigger ran the ETL and training DAGs: the served champion."""
    logs = stack.wait_for_training()
    assert "training pipeline finished" in logs, logs[-2000:]
    model = stack.wait_for_champion()
    stack.figures["memory_mib_after_training"] = stack.memory_mb()
    return model


def test_project_images_are_built_from_their_dockerfiles(stack: DockerStack) -> None:
    for key in BUILT_IMAGES:
        image = stack.client.images.get(f"{PREFIX}/{key}:dev")
        assert stack.outputs["images"][key] == image.id, key
    # Each service runs the image built for it, referenced by its ID (a rebuild replaces the container).
    for service in (catalog.MLFLOW, catalog.API, catalog.AIRFLOW_SCHEDULER):
        key = "airflow" if service.startswith("airflow") else service
        assert stack.container(service).image.id == stack.outputs["images"][key], service


def test_every_container_is_healthy_and_every_job_succeeded(stack: DockerStack) -> None:
    stack.ensure_up()
    # `pulumi up` waits only for the containers others depend on; the rest turn healthy on their own.
    stack.figures.setdefault("up_to_all_healthy_s", stack.figures["up_s"] + stack.wait_all_healthy())
    assert set(stack.health().values()) == {"healthy"}, stack.health()
    for job in JOBS:
        state = stack.container(job).attrs["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), job
    network = stack.client.networks.get(stack.outputs["networkName"])
    attached = {c.name for c in network.containers}
    assert {stack.name(s) for s in catalog.SERVICES} <= attached
    for service in catalog.SERVICES:
        bindings = stack.container(service).attrs["HostConfig"]["PortBindings"] or {}
        assert all(b["HostIp"] == "127.0.0.1" for binds in bindings.values() for b in binds), service


def test_training_trigger_registers_a_champion_per_dataset_in_mlflow(
    stack: DockerStack, trained: dict[str, Any]
) -> None:
    """The trigger job ran every active dataset's DAG pair; each registered model has a champion."""
    for dataset in stack.datasets():
        name = get_spec(dataset).registered_model
        r = httpx.get(
            stack.url("mlflow", "/api/2.0/mlflow/registered-models/alias"),
            params={"name": name, "alias": "champion"},
            auth=stack.mlflow_auth("api"),  # the API's login: READ
        )
        assert r.status_code == 200, (dataset, r.text)
        if name == trained["name"]:  # the default model, served on the unnamed routes
            assert r.json()["model_version"]["version"] == str(trained["version"])
    assert {run.split("/")[0] for run, state in stack.dag_runs().items() if state == "success"} == {
        dag_id for d in stack.datasets() for dag_id in pipeline(d)
    }


def test_api_container_answers_like_the_embedded_api(stack: DockerStack, trained: dict[str, Any]) -> None:
    """The API image (``api`` extra only) and the embedded stack's API process give the same answer."""
    in_container = stack.predict(stack.url("api"))
    with stack.host_api() as host_url:
        on_host = stack.predict(host_url)
    # Same class, label and model; probabilities equal up to the last bits (the host's Python and BLAS differ).
    assert {k: v for k, v in in_container.items() if "probabilit" not in k} == {
        k: v for k, v in on_host.items() if "probabilit" not in k
    }
    assert in_container["probability"] == pytest.approx(on_host["probability"], rel=1e-9)
    assert in_container["probabilities"] == pytest.approx(on_host["probabilities"], rel=1e-9)
    assert in_container["model"]["alias"] == "champion"
    print(f"API container: {in_container['label']} (p={in_container['probability']:.3f}) v{trained['version']}")


def test_lambda_answers_through_its_function_url_and_rest_v1(stack: DockerStack, trained: dict[str, Any]) -> None:
    """LocalStack's own Docker executor runs the function in a container on the stack network."""
    expected = stack.predict(stack.url("api"))
    gateway, headers = stack.function_url()
    t0 = time.monotonic()
    assert stack.predict(gateway, headers=headers) == expected
    stack.figures["lambda_first_request_s"] = time.monotonic() - t0
    assert stack.predict(stack.rest_url()) == expected
    lambdas = [c for c in stack.stack_containers() if "lambda" in c.name and c.status == "running"]
    assert lambdas, "the function did not run in a container of its own"
    networks = lambdas[0].attrs["NetworkSettings"]["Networks"]
    assert stack.outputs["networkName"] in networks


# ---------------------------------------------------------------------------------------------------------
# Least privilege: each login is refused what it was not granted (infra/access.py), by the servers themselves
# ---------------------------------------------------------------------------------------------------------
def _s3_refused(call: Any) -> str:
    """The S3 error code of a call that must be refused."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_mlflow_refuses_an_alias_move_to_the_api_user_and_to_anonymous_clients(
    stack: DockerStack, trained: dict[str, Any]
) -> None:
    url = stack.url("mlflow", "/api/2.0/mlflow/registered-models/alias")
    move = {"name": trained["name"], "alias": "champion", "version": str(trained["version"])}
    assert httpx.post(url, json=move, timeout=30).status_code == 401  # no login, nothing
    assert httpx.get(url, params={"name": move["name"], "alias": "champion"}, timeout=30).status_code == 401
    refused = httpx.post(url, json=move, auth=stack.mlflow_auth("api"), timeout=30)
    assert refused.status_code == 403, refused.text  # READ only
    # The same request by the pipeline's user (MANAGE) goes through: it is the permission, not the request.
    allowed = httpx.post(url, json=move, auth=stack.mlflow_auth("pipeline"), timeout=30)
    assert allowed.status_code == 200, allowed.text
    wrong = httpx.get(url, params={"name": move["name"], "alias": "champion"}, auth=("api", "wrong"), timeout=30)
    assert wrong.status_code == 401


def test_s3_identities_are_refused_what_they_were_not_granted(stack: DockerStack, trained: dict[str, Any]) -> None:
    """MinIO enforces each user's policy (the ``s3-users`` job's): writes outside the grants are refused."""
    probe = {"Key": "dtier-probe/refused", "Body": b"x"}
    for identity in ("api", "lambda"):
        s3 = stack.s3(identity)
        assert _s3_refused(lambda s3=s3: s3.put_object(Bucket=catalog.MLFLOW_BUCKET, **probe)) == "AccessDenied"
        s3.list_objects_v2(Bucket=catalog.MLFLOW_BUCKET, MaxKeys=1)  # reading the models is granted
        assert _s3_refused(lambda s3=s3: s3.list_objects_v2(Bucket=catalog.LAKE_BUCKET)) == "AccessDenied"
    lambda_s3 = stack.s3("lambda")
    assert _s3_refused(lambda: lambda_s3.put_object(Bucket=catalog.SERVING_BUCKET, **probe)) == "AccessDenied"
    pipeline = stack.s3("pipeline")
    assert _s3_refused(lambda: pipeline.list_objects_v2(Bucket=catalog.SERVING_BUCKET)) == "AccessDenied"
    assert _s3_refused(lambda: pipeline.get_object(Bucket=catalog.SERVING_BUCKET, Key="anything")) == "AccessDenied"
    assert pipeline.list_objects_v2(Bucket=catalog.LAKE_BUCKET)["KeyCount"] > 0  # its own lake: granted
    mlflow_s3 = stack.s3("mlflow")
    assert _s3_refused(lambda: mlflow_s3.list_objects_v2(Bucket=catalog.LAKE_BUCKET)) == "AccessDenied"
    # The API may publish the champion cache: write (and delete) in the serving bucket.
    api = stack.s3("api")
    api.put_object(Bucket=catalog.SERVING_BUCKET, Key="dtier-probe/granted", Body=b"x")
    api.delete_object(Bucket=catalog.SERVING_BUCKET, Key="dtier-probe/granted")
    assert set(access.S3_GRANTS["api"]) == {catalog.MLFLOW_BUCKET, catalog.SERVING_BUCKET}


def test_each_database_belongs_to_its_role_alone(stack: DockerStack, trained: dict[str, Any]) -> None:
    creds = stack.credentials()
    roles = sorted(set(catalog.DATABASE_ROLES.values()))
    for database, owner in catalog.DATABASE_ROLES.items():
        for role in roles:
            password = getattr(creds, f"postgres_{role}_password")
            if role == owner:
                with stack.pg_connect(role, password, database) as conn, conn.cursor() as cur:
                    cur.execute("SELECT current_user, current_database()")
                    assert cur.fetchone() == (role, database)
                continue
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                stack.pg_connect(role, password, database)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        stack.pg_connect("optuna", creds.postgres_airflow_password, "optuna")
    with stack.pg_connect(catalog.POSTGRES_USER, creds.postgres_password, "postgres") as conn, conn.cursor() as cur:
        cur.execute("SELECT d.datname, r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba")
        owners = dict(cur.fetchall())
    assert {db: owners[db] for db in catalog.DATABASES} == catalog.DATABASE_ROLES


def test_admin_jobs_can_run_again(stack: DockerStack, trained: dict[str, Any]) -> None:
    """Every `pulumi up` may run the roles and users jobs again: they are idempotent and change no login."""
    for job in ADMIN_JOBS:
        container = stack.container(job)
        container.start()
        status = container.wait(timeout=300)
        assert status["StatusCode"] == 0, f"{job}:\n{container.logs().decode(errors='replace')[-3000:]}"
    assert _s3_refused(lambda: stack.s3("pipeline").list_objects_v2(Bucket=catalog.SERVING_BUCKET)) == "AccessDenied"
    stack.s3("api").list_objects_v2(Bucket=catalog.MLFLOW_BUCKET, MaxKeys=1)
    url = stack.url("mlflow", "/api/2.0/mlflow/registered-models/get")
    r = httpx.get(url, params={"name": trained["name"]}, auth=stack.mlflow_auth("api"), timeout=30)
    assert r.status_code == 200, r.text
    assert stack.predict(stack.url("api"))


def test_restarting_every_container_keeps_the_data(stack: DockerStack, trained: dict[str, Any]) -> None:
    before = stack.predict(stack.url("api"))
    lake = stack.lake_objects()
    runs = stack.dag_runs()
    assert lake and runs
    for service in catalog.start_order():
        stack.container(service).restart(timeout=catalog.SERVICES[service].stop_grace_s)
    stack.figures["restart_to_healthy_s"] = stack.wait_all_healthy()
    stack.wait_for_champion()
    assert stack.predict(stack.url("api")) == before
    assert stack.lake_objects() == lake
    assert stack.dag_runs() == runs
    # The users and their rights survive too (MinIO's IAM store, MLflow's auth database).
    assert _s3_refused(lambda: stack.s3("api").put_object(Bucket=catalog.MLFLOW_BUCKET, Key="k", Body=b"x"))
    stack.s3("api").list_objects_v2(Bucket=catalog.MLFLOW_BUCKET, MaxKeys=1)
    url = stack.url("mlflow", "/api/2.0/mlflow/registered-models/alias")
    move = {"name": trained["name"], "alias": "champion", "version": str(trained["version"])}
    assert httpx.post(url, json=move, auth=stack.mlflow_auth("api"), timeout=30).status_code == 403


def test_a_spec_added_on_the_host_gets_its_dags_without_a_rebuild(stack: DockerStack, trained: dict[str, Any]) -> None:
    """ml/datasets/ is mounted read-only into Airflow: a new spec file shows its DAG pair, no image rebuilt."""
    probe = "zz_docker_probe"
    spec_file = REPO / "ml" / "datasets" / f"{probe}.yaml"
    assert not spec_file.exists(), f"{spec_file} is left over from an earlier run: remove it"
    images = {key: stack.container(key).image.id for key in ("airflow-dag-processor", "airflow-scheduler")}
    creds = stack.credentials()
    from infra.local.airflow_client import AirflowClient

    started = time.monotonic()
    try:
        spec_file.write_text(
            (REPO / "ml" / "datasets" / "wine.yaml").read_text().replace("name: wine\n", f"name: {probe}\n", 1)
        )
        with AirflowClient(stack.url("airflow"), catalog.AIRFLOW_ADMIN_USER, creds.airflow_admin_password) as af:
            waiting = set(pipeline(probe))  # polled, not triggered: the probe trains nothing
            while waiting := {dag_id for dag_id in waiting if af.get_dag(dag_id) is None}:
                assert time.monotonic() - started < 180, f"{sorted(waiting)} not parsed after 180 s"
                time.sleep(2)
        print(f"a new spec's DAGs appeared {time.monotonic() - started:.1f} s after the file was written")
    finally:
        spec_file.unlink(missing_ok=True)
    assert {key: stack.container(key).image.id for key in images} == images
    assert all(stack.health()[key] == "healthy" for key in images)


def test_doc_and_infra_edits_leave_the_service_images_alone(stack: DockerStack) -> None:
    """Only what an image copies is in its build context: editing the README or the Pulumi program rebuilds
    nothing (before, both images copied README.md and infra/, and such an edit replaced five containers)."""
    with tempfile.TemporaryDirectory(prefix="mlops-context-") as tmp:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        for rel in tracked.split():
            target = Path(tmp, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
        ids = {key: stack.build_in(tmp, key) for key in ("api", "airflow")}
        for rel in ("README.md", "infra/components/platform.py", "infra/local/stack.py", "bench/stack.py"):
            with Path(tmp, rel).open("a") as fh:
                fh.write("\n# an edit that no image should see\n")
        assert {key: stack.build_in(tmp, key) for key in ids} == ids


def test_destroy_leaves_only_the_built_images(stack: DockerStack) -> None:
    """``pulumi destroy`` removes every container (LocalStack's Lambda containers too), the network and the
    volumes; the images built from infra/docker/ stay in the engine's cache (the provider never deletes them)."""
    stack.ensure_up()
    network = stack.outputs["networkName"]
    took = stack.destroy()
    print(f"destroy: {took:.1f} s")
    assert not stack.stack_containers(), [c.name for c in stack.stack_containers()]
    assert not stack.client.networks.list(names=[network])
    assert not [v.name for v in stack.client.volumes.list() if v.name.startswith(f"{PREFIX}-")]
    for key in BUILT_IMAGES:
        assert stack.client.images.get(f"{PREFIX}/{key}:dev")
