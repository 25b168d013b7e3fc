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
    for f in (passwords, up_stack.paths.s3_identities):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_no_secret_in_logs_or_supervisord_conf(up_stack: Stack) -> None:
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
        cmdline = " ".join(proc.cmdline())
        assert not any(v in cmdline for v in secrets), proc.name()


def test_each_service_sees_only_the_secrets_it_uses(up_stack: Stack) -> None:
    """Secrets live in supervisord's environment; each program sheds the ones it does not use (env -u)."""
    import psutil

    creds = up_stack.credentials()
    supervisor = up_stack.supervisor()

    def holds(service: str, secret: str) -> bool:
        env = psutil.Process(supervisor.info(service).pid).environ()
        return any(secret in value for value in env.values())

    assert holds(catalog.API, creds.api_admin_key) and holds(catalog.API, creds.s3_secret_key)
    assert not holds(catalog.API, creds.postgres_password) and not holds(catalog.API, creds.airflow_fernet_key)
    assert holds(catalog.MLFLOW, creds.postgres_password) and not holds(catalog.MLFLOW, creds.api_admin_key)
    assert holds(catalog.AIRFLOW_SCHEDULER, creds.airflow_fernet_key)
    assert not holds(catalog.AIRFLOW_SCHEDULER, creds.api_admin_key)
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
