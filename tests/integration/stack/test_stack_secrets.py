"""Credentials: one 0600 file, reused; never in logs or the supervisord config; wrong keys are rejected.

This module runs last (alphabetical order), after DAG runs, restarts and a down/up, so the logs it scans
hold everything the stack wrote during the session.
"""

from __future__ import annotations

import json
import stat

import boto3
import httpx
import psycopg2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra import catalog
from infra.local import Stack
from tests.integration.stack.stack_helpers import text_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_credentials_file_is_private_and_reused(up_stack: Stack) -> None:
    path = up_stack.paths.credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    assert set(json.loads(before)) == set(catalog.Credentials.names())
    up_stack.up()
    assert path.read_text() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the derived secret files are private too
    passwords = up_stack.paths.airflow_home / "simple_auth_manager_passwords.json"
    paths = up_stack.paths
    for f in (passwords, paths.s3_identities, paths.mlflow_auth_config, *paths.run.glob("*.secrets.json")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_no_secret_in_logs_or_supervisord_conf(up_stack: Stack, test_dag_run: str) -> None:
    """No credential in any log (services' and the test DAG's task logs) or in supervisord's config."""
    paths = up_stack.paths
    scanned = [
        paths.supervisord_conf,
        paths.airflow_home / "airflow.cfg",
        *text_files(paths.logs),
        *text_files(paths.airflow_home / "logs"),
    ]
    assert any(p.name == "airflow-scheduler.log" for p in scanned)
    assert any("dag_id=" in str(p) for p in scanned), "expected task logs of the test DAG"
    secrets = up_stack.credentials().values()
    leaks = [
        (p, n)
        for p in scanned
        for n, v in zip(catalog.Credentials.names(), secrets, strict=True)
        if v in p.read_text(errors="replace")
    ]
    assert not leaks, f"credentials found in: {leaks}"


def test_no_secret_on_any_command_line(up_stack: Stack) -> None:
    import psutil

    root = psutil.Process(up_stack.supervisord_pid())
    secrets = up_stack.credentials().values()
    for proc in [root, *root.children(recursive=True)]:
        try:
            cmdline = " ".join(proc.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):  # ended meanwhile (e.g. a finished task process)
            continue
        assert not any(v in cmdline for v in secrets), proc.name()


def test_each_service_sees_only_the_secrets_it_uses(up_stack: Stack) -> None:
    """Each program's launcher loads its own secrets; supervisord holds none, no service holds another's."""
    import psutil

    creds = up_stack.credentials()
    supervisor = up_stack.supervisor()

    def holds(service: str, secret: str) -> bool:
        env = psutil.Process(supervisor.info(service).pid).environ()
        return any(secret in value for value in env.values())

    supervisord_env = psutil.Process(up_stack.supervisord_pid()).environ().values()
    assert not any(secret in v for secret in creds.values() for v in supervisord_env)
    assert holds(catalog.API, creds.api_admin_key) and holds(catalog.API, creds.s3_api_secret_key)
    assert holds(catalog.API, creds.mlflow_api_password)
    assert not holds(catalog.API, creds.postgres_password) and not holds(catalog.API, creds.airflow_fernet_key)
    assert not holds(catalog.API, creds.s3_secret_key) and not holds(catalog.API, creds.mlflow_pipeline_password)
    assert holds(catalog.MLFLOW, creds.postgres_mlflow_password) and not holds(catalog.MLFLOW, creds.postgres_password)
    assert holds(catalog.MLFLOW, creds.s3_mlflow_secret_key) and not holds(catalog.MLFLOW, creds.api_admin_key)
    assert holds(catalog.AIRFLOW_SCHEDULER, creds.airflow_fernet_key)
    assert holds(catalog.AIRFLOW_SCHEDULER, creds.s3_pipeline_secret_key)
    assert not holds(catalog.AIRFLOW_SCHEDULER, creds.api_admin_key)
    assert not holds(catalog.AIRFLOW_SCHEDULER, creds.mlflow_admin_password)
    assert not any(holds(catalog.S3, v) for v in (creds.postgres_password, creds.api_admin_key))


def test_s3_rejects_wrong_keys(up_stack: Stack) -> None:
    creds = up_stack.credentials()
    endpoint = catalog.s3_endpoint(up_stack.topology)
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})

    def client(key: str, secret: str):
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=catalog.REGION,
            config=cfg,
        )

    names = {b["Name"] for b in client(creds.s3_access_key, creds.s3_secret_key).list_buckets()["Buckets"]}
    assert set(catalog.BUCKETS) <= names
    for key, secret in [(creds.s3_access_key, "wrong-secret"), ("AKWRONG0000000000", creds.s3_secret_key)]:
        with pytest.raises(ClientError) as e:
            client(key, secret).list_buckets()
        assert e.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}
    with pytest.raises(ClientError):
        client("", "").list_objects_v2(Bucket=catalog.LAKE_BUCKET)


def test_postgres_rejects_a_wrong_password(up_stack: Stack) -> None:
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host="127.0.0.1",
            port=up_stack.settings.postgres_port,
            user=catalog.POSTGRES_USER,
            password="wrong",
            dbname="mlflow",
            connect_timeout=3,
        )


def test_airflow_api_requires_a_token(up_stack: Stack) -> None:
    base = up_stack.url(catalog.AIRFLOW_API)
    assert httpx.get(f"{base}/api/v2/dags", timeout=10).status_code == 401
    bad = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=10)
    assert bad.status_code in (401, 403)
    token = up_stack.airflow_token()
    ok = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Least privilege: each service may do what it uses, nothing else (infra/access.py)
# ---------------------------------------------------------------------------------------------------------
def test_mlflow_requires_a_login_and_the_api_cannot_move_an_alias(trained_stack) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    stack, result = trained_stack
    creds = stack.credentials()
    url = stack.url(catalog.MLFLOW)
    model = "breast_cancer_classifier"
    anonymous = httpx.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": model}, timeout=10)
    assert anonymous.status_code == 401
    api = ("api", creds.mlflow_api_password)
    read = httpx.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": model}, auth=api, timeout=10)
    assert read.status_code == 200
    moved = httpx.post(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        json={"name": model, "alias": "champion", "version": result.champion_version},
        auth=api,
        timeout=10,
    )
    assert moved.status_code == 403, moved.text
    run = httpx.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, auth=api, timeout=10)
    assert run.status_code == 403, run.text
    # the pipeline's user may (the operator checks it through MLflow's own client)
    import os

    os.environ["MLFLOW_TRACKING_USERNAME"] = "pipeline"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = creds.mlflow_pipeline_password
    try:
        MlflowClient(tracking_uri=url).set_registered_model_alias(model, "champion", result.champion_version)
    except MlflowException as e:  # pragma: no cover - reported with the server's answer
        raise AssertionError(f"the pipeline's user could not move the alias: {e}") from e
    finally:
        login = stack.mlflow_login()
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = login


def test_s3_identities_have_only_their_grants(up_stack: Stack) -> None:
    from infra.access import S3_GRANTS

    creds = up_stack.credentials()
    endpoint = catalog.s3_endpoint(up_stack.topology)
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    for identity, grants in S3_GRANTS.items():
        key, secret = catalog.s3_keys(creds, identity)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
            region_name=catalog.REGION, config=cfg,
        )  # fmt: skip
        for bucket in catalog.BUCKETS:
            allowed = grants.get(bucket, ())
            probe = f"probes/{identity}.txt"
            try:
                s3.put_object(Bucket=bucket, Key=probe, Body=b"x")
                wrote = True
            except ClientError as e:
                assert e.response["Error"]["Code"] == "AccessDenied", (identity, bucket, e.response["Error"])
                wrote = False
            assert wrote == ("write" in allowed), f"{identity} write {bucket}: {wrote}"
            try:
                s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
                listed = True
            except ClientError as e:
                assert e.response["Error"]["Code"] == "AccessDenied", (identity, bucket, e.response["Error"])
                listed = False
            assert listed == ("list" in allowed), f"{identity} list {bucket}: {listed}"
            if wrote:
                s3.delete_object(Bucket=bucket, Key=probe)


def test_each_database_role_reaches_only_its_database(up_stack: Stack) -> None:
    creds = up_stack.credentials()
    port = up_stack.settings.postgres_port

    def connect(role: str, password: str, database: str) -> None:
        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user=role, password=password, dbname=database, connect_timeout=3
        )
        conn.close()

    for database, role in catalog.DATABASE_ROLES.items():
        password = getattr(creds, f"postgres_{role}_password")
        connect(role, password, database)
        for other, owner in catalog.DATABASE_ROLES.items():
            if owner != role:
                with pytest.raises(psycopg2.OperationalError, match="permission denied"):
                    connect(role, password, other)
