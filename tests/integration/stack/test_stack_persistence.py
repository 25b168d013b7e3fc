"""`down` then `up` keeps the data: a Postgres row, an S3 object, an MLflow experiment (with an artifact
stored in S3 through the server) and an Airflow DAG run; nothing survives `down`."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config

from infra import catalog
from infra.local import Stack
from infra.local.health import pg_connect
from infra.local.ports import port_is_listening
from infra.local.supervisor import stack_processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def s3(stack: Stack):
    c = stack.credentials()
    return boto3.client(
        "s3",
        endpoint_url=catalog.s3_endpoint(stack.topology),
        aws_access_key_id=c.s3_access_key,
        aws_secret_access_key=c.s3_secret_key,
        region_name=catalog.REGION,
        config=Config(s3={"addressing_style": "path"}),
    )


def test_down_then_up_keeps_all_data(up_stack: Stack, test_dag_id: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    stack = up_stack
    marker = uuid.uuid4().hex

    # Postgres: a row in the Optuna database
    conn = pg_connect(stack.topology, stack.credentials(), "optuna")
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS stack_test (marker text)")
        cur.execute("INSERT INTO stack_test VALUES (%s)", (marker,))
    conn.close()

    # S3: an object in the lake
    s3(stack).put_object(Bucket=catalog.LAKE_BUCKET, Key=f"stack-test/{marker}.txt", Body=marker.encode())

    # MLflow: an experiment and a run with an artifact (proxied by the server to s3://mlflow/artifacts)
    tracking = stack.url(catalog.MLFLOW)
    client = MlflowClient(tracking_uri=tracking)
    exp_id = client.create_experiment(f"stack-test-{marker}")
    run = client.create_run(exp_id)
    art = tmp_path / "note.txt"
    art.write_text(marker)
    client.log_artifact(run.info.run_id, str(art))
    client.set_terminated(run.info.run_id)
    keys = [o["Key"] for o in s3(stack).list_objects_v2(Bucket=catalog.MLFLOW_BUCKET).get("Contents", [])]
    assert any(k.endswith("note.txt") for k in keys), keys

    # Airflow: a successful run of the test DAG, with live progress
    progress = []
    run_id = stack.trigger_dag(test_dag_id)
    assert stack.wait_for_dag_run(test_dag_id, run_id, on_progress=progress.append, timeout=300) == "success"
    assert progress[-1].tasks == {"produce": "success", "consume": "success"}

    # down: everything stops, nothing is left behind
    sup_pid = stack.supervisord_pid()
    tree = [p.pid for p in psutil.Process(sup_pid).children(recursive=True)]
    elapsed = stack.down()
    print(f"down took {elapsed:.1f} s")
    assert not stack.is_running()
    assert not psutil.pid_exists(sup_pid)
    assert [p for p in tree if psutil.pid_exists(p)] == []
    assert stack_processes(stack.paths) == []
    for owner, port in stack.settings.listening_ports().items():
        assert not port_is_listening(port), f"{owner} still listening on {port}"
    assert not stack.paths.supervisor_socket.exists()

    # up: everything is back
    timings = stack.up()
    print(f"warm up: {timings['total']:.1f} s")
    conn = pg_connect(stack.topology, stack.credentials(), "optuna")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM stack_test WHERE marker = %s", (marker,))
        assert cur.fetchone()[0] == 1
    conn.close()
    body = s3(stack).get_object(Bucket=catalog.LAKE_BUCKET, Key=f"stack-test/{marker}.txt")["Body"].read()
    assert body == marker.encode()
    client = MlflowClient(tracking_uri=tracking)
    assert client.get_experiment_by_name(f"stack-test-{marker}").experiment_id == exp_id
    mlflow.set_tracking_uri(tracking)
    local = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == marker
    with stack.airflow() as af:
        runs = {r["dag_run_id"]: r["state"] for r in af.list_dag_runs(test_dag_id)}
    assert runs.get(run_id) == "success"
