"""Behaviour of the stand-in images against real containers, through the interface the Pulumi program uses.

Where the program (infra/) decides how a container is probed or configured (healthcheck commands, the
``mc`` environment and bucket command, the Postgres init script), the tests take it from infra/ itself,
so a change there is exercised here. Timings (healthcheck interval, waits) are the tests' own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import docker
import psycopg2
import pytest
from docker.models.containers import Container

from infra import access, catalog
from infra.components import health, services
from infra.components.common import StackValues
from tests.docker.engine import Engine
from tests.docker.helpers import DockerResources, healthcheck, host_port, logs, wait_exit, wait_healthy
from tests.docker.standins.build import LABEL, LABEL_DESCRIPTION, LABEL_INPUTS, Figures, ensure_standins

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = "python:3.12.12-slim-bookworm"
UV = "ghcr.io/astral-sh/uv:0.13.9"
POSTGRES = "postgres:17.6"
MINIO = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
UPSTREAM_TAGS = (PYTHON, UV, POSTGRES, MINIO)
# A secret with every character that needs URL-quoting in MC_HOST_<alias> (the program quotes it).
AWKWARD_SECRET = "se/cr+et=key_-x@y:z%20"


# ---------------------------------------------------------------------------------------------------------
# The build machinery
# ---------------------------------------------------------------------------------------------------------


def test_every_standin_is_labelled(docker_client: docker.DockerClient, standins: dict[str, Figures]) -> None:
    assert set(UPSTREAM_TAGS) <= set(standins)
    for tag, figures in standins.items():
        if figures.status == "upstream":  # the real image is present on this engine
            continue
        image = docker_client.images.get(tag)
        assert figures.status in ("built", "reused")
        assert image.labels[LABEL] == "true"
        assert image.labels[LABEL_DESCRIPTION].strip()
        assert image.labels[LABEL_INPUTS] == figures.inputs_hash


def test_unchanged_standins_are_reused(docker_engine: Engine, standins: dict[str, Figures]) -> None:
    again = ensure_standins(docker_engine.client, docker_engine.cli, log=lambda _message: None)
    assert {tag: f.status for tag, f in again.items()} == {
        tag: "upstream" if f.status == "upstream" else "reused" for tag, f in standins.items()
    }
    assert {tag: f.image_id for tag, f in again.items()} == {tag: f.image_id for tag, f in standins.items()}


# ---------------------------------------------------------------------------------------------------------
# python + uv: the project's own Dockerfiles build on them unmodified
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["10001", "50000:0"])
def test_python_runs_for_non_root_users(docker_client: docker.DockerClient, user: str) -> None:
    script = "import sqlite3, ssl, sys, zoneinfo; print(sys.version.split()[0], ssl.OPENSSL_VERSION)"
    out = docker_client.containers.run(PYTHON, ["/usr/local/bin/python3.12", "-c", script], user=user, remove=True)
    assert out.decode().startswith("3.12.")


def test_uv_image_is_scratch_with_static_binaries(docker_client: docker.DockerClient) -> None:
    image = docker_client.images.get(UV)
    assert image.attrs["Config"]["Entrypoint"] == ["/uv"]
    out = docker_client.containers.run(UV, ["--version"], remove=True)
    assert out.decode().strip().startswith("uv 0.13.9")


# Each Dockerfile with a command showing that the built image works.
PROJECT_IMAGES = {
    "api": ["python", "-c", "import api"],
    "mlflow": ["mlflow", "--version"],
    "airflow": ["airflow", "version"],
}


def upstream_images() -> set[str]:
    """Every image the program pulls: Pulumi.dev.yaml's pinned images, the Dockerfiles' bases and ``COPY --from``
    sources, and the base image LocalStack runs the API's Lambda runtime in."""
    import re

    import yaml

    from infra.aws_lambda.spec import LAMBDA

    config = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    refs = set(config["mlops-platform:images"].values())
    for dockerfile in (REPO_ROOT / "infra" / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        refs |= {m for m in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE) if ":" in m}
        refs |= {m for m in re.findall(r"COPY\s+--from=(\S+)", text) if ":" in m}  # not stage names
    runtime = LAMBDA.runtime.removeprefix("python")  # python3.12 -> 3.12
    refs.add(f"public.ecr.aws/lambda/python:{runtime}")
    return refs


def test_every_upstream_image_has_a_standin() -> None:
    from tests.docker.standins.catalog import discover

    missing = upstream_images() - set(discover())
    assert not missing, f"no stand-in for {sorted(missing)}: add a folder under tests/docker/standins/"


@pytest.mark.parametrize("name", list(PROJECT_IMAGES))
def test_project_dockerfile_builds_unmodified(
    docker_engine: Engine, standins: dict[str, Figures], resources: DockerResources, name: str
) -> None:
    tag = f"{resources.name('image')}:test"
    resources.track_image(tag)
    dockerfile = f"infra/docker/{name}.Dockerfile"
    # BuildKit through the CLI, as pulumi-docker does: the per-Dockerfile .dockerignore applies.
    done = subprocess.run(
        [docker_engine.cli, "build", "--progress=plain", "-f", dockerfile, "-t", tag, "."],
        cwd=REPO_ROOT,
        env=docker_engine.cli_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    container = resources.create(tag, "smoke", command=PROJECT_IMAGES[name])
    container.start()
    assert wait_exit(container, timeout_s=180) == 0, logs(container)[-3000:]


# ---------------------------------------------------------------------------------------------------------
# postgres:17.6
# ---------------------------------------------------------------------------------------------------------

PG_HEALTH = health.for_service(catalog.POSTGRES, catalog.Topology.docker()).tests


def _put_file(container: Container, path: str, content: str) -> None:
    """Copy one file into a created container (what pulumi-docker's ``uploads`` does before start)."""
    data = content.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode = len(data), 0o644
        archive.addfile(info, io.BytesIO(data))
    assert container.put_archive(os.path.dirname(path), buffer.getvalue())


def _put_files(container: Container, files: dict[str, str]) -> None:
    """Copy files into a created container at their absolute paths, missing directories included (as the
    replay carries out pulumi-docker's ``uploads``: one archive extracted at ``/``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    assert container.put_archive("/", buffer.getvalue())


def _job(
    resources: DockerResources, network: Any, image: str, what: str, job: Any, env: dict[str, str]
) -> tuple[int, str]:
    """Run one of the program's jobs (a :class:`infra.components.service.Job`) like the replay does."""
    container = resources.create(
        image, what, entrypoint=list(job.entrypoint), command=list(job.command), environment=env
    )
    network.connect(container)
    _put_files(container, dict(job.uploads))
    container.start()
    return wait_exit(container, 180), logs(container)


@pytest.fixture
def start_postgres(resources: DockerResources) -> Callable[..., tuple[Container, int]]:
    """Start a postgres stand-in as infra/components/services.py specifies it; returns (container, host port)."""

    def start(password: str, network: Any = None, **env: str) -> tuple[Container, int]:
        volume = resources.volume("pgdata")
        creds = dataclasses.replace(_creds(), postgres_password=password)
        container = resources.create(
            POSTGRES,
            "postgres",
            environment={**services.postgres_env(_values(creds)), **env},
            volumes={volume.name: {"bind": services.POSTGRES_DATA_DIR, "mode": "rw"}},
            ports={"5432/tcp": ("127.0.0.1", None)},
            healthcheck=healthcheck(PG_HEALTH),
            hostname=catalog.POSTGRES,
        )
        if network is not None:
            network.connect(container, aliases=[catalog.POSTGRES])
        _put_file(container, services.POSTGRES_INIT_SCRIPT, services.postgres_init_sql())
        container.start()
        wait_healthy(container, 90)
        return container, host_port(container, 5432)

    return start


def _creds() -> catalog.Credentials:
    return catalog.Credentials.generate()


def _values(creds: catalog.Credentials) -> StackValues:
    return StackValues(creds=creds, network="unused-by-these-services")


def _pg_connect(port: int, password: str, dbname: str = "postgres") -> Any:
    return psycopg2.connect(
        host="127.0.0.1", port=port, user=catalog.POSTGRES_USER, password=password, dbname=dbname, connect_timeout=10
    )


def _pg_query(port: int, password: str, sql: str, params: list[Any] | None = None, dbname: str = "postgres") -> Any:
    """Run one statement over TCP with password auth (committed); its rows, if any."""
    with contextlib.closing(_pg_connect(port, password, dbname)) as conn, conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def test_postgres_init_scripts_and_password_auth_over_tcp(start_postgres: Callable[..., tuple[Container, int]]) -> None:
    password = "pw-" + _creds().postgres_password
    container, port = start_postgres(password)
    databases = {row[0] for row in _pg_query(port, password, "SELECT datname FROM pg_database")}
    # The init script's databases, and POSTGRES_DB (defaults to POSTGRES_USER) like the official image.
    assert {*catalog.DATABASES, catalog.POSTGRES_USER} <= databases
    for db in catalog.DATABASES:
        assert _pg_query(port, password, "SELECT current_database()", dbname=db) == [(db,)]
    assert _pg_query(port, password, "SHOW password_encryption") == [("scram-sha-256",)]
    stored = "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s"
    assert _pg_query(port, password, stored, [catalog.POSTGRES_USER]) == [(True,)]
    assert _pg_query(port, password, "SHOW server_encoding") == [("UTF8",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _pg_connect(port, "wrong-" + password)
    # The server runs as postgres (uid 999), not root.
    assert container.top()["Processes"][0][0] in ("999", "postgres")


def test_postgres_from_a_second_container_by_name(
    docker_client: docker.DockerClient, resources: DockerResources, start_postgres: Callable[..., tuple[Container, int]]
) -> None:
    password = _creds().postgres_password
    network = resources.network()
    start_postgres(password, network=network)
    url = f"postgresql://{catalog.POSTGRES_USER}:{password}@postgres:5432/mlflow"
    ok = resources.create(POSTGRES, "psql-ok", entrypoint=["psql"], command=[url, "-tAc", "SELECT 41 + 1"])
    network.connect(ok)
    ok.start()
    assert wait_exit(ok, 60) == 0, logs(ok)
    assert logs(ok).strip() == "42"
    bad_url = url.replace(password, "wrong")
    bad = resources.create(POSTGRES, "psql-bad", entrypoint=["psql"], command=[bad_url, "-tAc", "SELECT 1"])
    network.connect(bad)
    bad.start()
    assert wait_exit(bad, 60) != 0
    assert "password authentication failed" in logs(bad)


def test_postgres_data_survives_restart_and_init_runs_once(
    start_postgres: Callable[..., tuple[Container, int]],
) -> None:
    password = _creds().postgres_password
    container, port = start_postgres(password)
    _pg_query(port, password, "CREATE TABLE kept AS SELECT 'still here'::text AS value", dbname="optuna")
    container.restart(timeout=30)
    wait_healthy(container, 90)
    port = host_port(container, 5432)  # a restart may publish on another host port
    assert _pg_query(port, password, "SELECT value FROM kept", dbname="optuna") == [("still here",)]
    text = logs(container)
    assert text.count("PostgreSQL init process complete") == 1
    assert "Skipping initialization" in text
    assert "10-create-databases.sql" in text


@pytest.mark.parametrize("signal", ["SIGTERM", "SIGINT"])
def test_postgres_stops_cleanly_on_signal(start_postgres: Callable[..., tuple[Container, int]], signal: str) -> None:
    container, _ = start_postgres(_creds().postgres_password)
    started = time.monotonic()
    container.kill(signal=signal)  # SIGTERM: smart shutdown; SIGINT: fast (the image's STOPSIGNAL)
    assert wait_exit(container, 15) == 0
    assert time.monotonic() - started < 5
    assert "database system is shut down" in logs(container)
    container.start()  # a clean shutdown needs no crash recovery on the next start
    wait_healthy(container, 60)
    assert "not properly shut down" not in logs(container)
    assert container.attrs["Config"]["StopSignal"] == "SIGINT"


def test_postgres_roles_job_gives_each_database_to_its_role(
    resources: DockerResources, start_postgres: Callable[..., tuple[Container, int]]
) -> None:
    """The program's ``postgres-roles`` job (psql, passwords from its environment only), run twice."""
    creds = _creds()
    network = resources.network()
    _, port = start_postgres(creds.postgres_password, network=network)
    topo = catalog.Topology.docker()
    job = services.postgres_roles_job(topo)
    env = services.postgres_roles_env(topo, _values(creds))
    for attempt in ("first", "again"):  # every `pulumi up` runs it
        code, output = _job(resources, network, POSTGRES, f"roles-{attempt}", job, env)
        assert code == 0, output
        assert "each owned by its role" in output
        assert not [v for v in creds.values() if v in output]

    def connect(role: str, database: str) -> Any:
        password = getattr(creds, f"postgres_{role}_password")
        return psycopg2.connect(
            host="127.0.0.1", port=port, user=role, password=password, dbname=database, connect_timeout=10
        )

    for database, owner in catalog.DATABASE_ROLES.items():
        with contextlib.closing(connect(owner, database)) as conn, conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS owned_by_me (x int)")  # it owns the public schema
        for role in set(catalog.DATABASE_ROLES.values()) - {owner}:
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                connect(role, database)
    # A missing password stops the job, and its output holds no password.
    incomplete = {k: v for k, v in env.items() if k != "MLOPS_POSTGRES_OPTUNA_PASSWORD"}
    code, output = _job(resources, network, POSTGRES, "roles-missing", job, incomplete)
    assert code != 0 and "MLOPS_POSTGRES_OPTUNA_PASSWORD" in output, output
    assert not [v for v in creds.values() if v in output]


def test_postgres_refuses_to_initialise_without_password(resources: DockerResources) -> None:
    container = resources.create(POSTGRES, "nopw", environment={"POSTGRES_USER": "mlops"})
    container.start()
    assert wait_exit(container, 60) == 1
    assert "superuser password is not specified" in logs(container)


# ---------------------------------------------------------------------------------------------------------
# minio/minio (SeaweedFS + mc)
# ---------------------------------------------------------------------------------------------------------

S3_HEALTH = health.for_service(catalog.S3, catalog.Topology.docker()).tests


def _s3_creds() -> catalog.Credentials:
    return dataclasses.replace(_creds(), s3_secret_key=AWKWARD_SECRET + _creds().s3_secret_key[:10])


@pytest.fixture
def start_minio(resources: DockerResources) -> Callable[..., tuple[Container, int, Any]]:
    """A MinIO stand-in as infra/components/services.py specifies it; returns (container, port, network)."""

    def start(creds: catalog.Credentials, network: Any = None, volume: Any = None) -> tuple[Container, int, Any]:
        network = network or resources.network()
        volume = volume or resources.volume("s3data")
        container = resources.create(
            MINIO,
            f"s3-{len(resources.containers)}",
            command=["server", services.S3_DATA_DIR, "--console-address", f":{services.S3_CONSOLE_PORT}"],
            environment=services.minio_env(_values(creds)),
            volumes={volume.name: {"bind": services.S3_DATA_DIR, "mode": "rw"}},
            ports={"9000/tcp": ("127.0.0.1", None)},
            healthcheck=healthcheck(S3_HEALTH),
            init=True,
            hostname="s3",
        )
        network.connect(container, aliases=[catalog.S3])
        container.start()
        wait_healthy(container, 60)
        return container, host_port(container, 9000), network

    return start


def _mc_job(
    resources: DockerResources, network: Any, what: str, command: list[str], env: dict[str, str]
) -> tuple[int, str]:
    """Run ``mc`` like the program's bucket job (entrypoint mc, MC_HOST_<alias> env); (exit code, logs)."""
    job = resources.create(MINIO, what, entrypoint=["mc"], command=command, environment=env)
    network.connect(job)
    job.start()
    code = wait_exit(job, 120)
    return code, logs(job)


def _s3(port: int, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def test_minio_bucket_job_via_mc_host(
    resources: DockerResources, start_minio: Callable[..., tuple[Container, int, Any]]
) -> None:
    creds = _s3_creds()
    _, port, network = start_minio(creds)
    env = services.mc_env(catalog.Topology.docker(), _values(creds))
    for attempt in ("first", "again"):  # --ignore-existing: the job may run on every `pulumi up`
        code, output = _mc_job(resources, network, f"mb-{attempt}", services.bucket_command(), env)
        assert code == 0, output
        assert all(f"`{services.MC_ALIAS}/{bucket}`" in output for bucket in catalog.BUCKETS), output
    code, output = _mc_job(resources, network, "ready", ["ready", services.MC_ALIAS], env)
    assert code == 0, output
    buckets = {b["Name"] for b in _s3(port, creds.s3_access_key, creds.s3_secret_key).list_buckets()["Buckets"]}
    assert set(catalog.BUCKETS) <= buckets
    # Without --ignore-existing an existing bucket is an error, with a non-zero exit like mc.
    code, output = _mc_job(resources, network, "mb-exists", ["mb", f"{services.MC_ALIAS}/lake"], env)
    assert code == 1
    assert "already own it" in output


def _allowed(identity: str, bucket: str, right: str) -> bool:
    return right in access.S3_GRANTS[identity].get(bucket, ())


def test_minio_users_job_enforces_each_identitys_policy(
    resources: DockerResources, start_minio: Callable[..., tuple[Container, int, Any]]
) -> None:
    """The program's ``s3-users`` job (``mc admin user add | policy create | policy attach``): afterwards each
    S3 identity may do exactly what infra/access.py grants it, in every bucket, and keeps it over a restart."""
    creds = _s3_creds()
    container, port, network = start_minio(creds)
    topo = catalog.Topology.docker()
    code, output = _mc_job(resources, network, "mb", services.bucket_command(), services.mc_env(topo, _values(creds)))
    assert code == 0, output
    job = services.s3_users_job(topo)
    env = services.s3_users_env(topo, _values(creds))
    for attempt in ("first", "again"):  # every `pulumi up` runs it; a second run changes nothing
        code, output = _job(resources, network, MINIO, f"users-{attempt}", job, env)
        assert code == 0, output
        for identity in services.s3_user_identities():
            assert f"S3 identity {identity}: MinIO user with policy mlops-{identity}" in output, output
        assert not [v for v in creds.values() if v in output], "mc's messages name the keys: not logged"
    root = _s3(port, creds.s3_access_key, creds.s3_secret_key)
    for bucket in catalog.BUCKETS:
        root.put_object(Bucket=bucket, Key="seed/object", Body=b"seed")

    def check_every_right() -> None:
        s3_port = host_port(container, 9000)
        for identity in services.s3_user_identities():
            s3 = _s3(s3_port, *catalog.s3_keys(creds, identity))
            for bucket in catalog.BUCKETS:
                calls = {
                    access.READ: lambda s3=s3, b=bucket: s3.get_object(Bucket=b, Key="seed/object")["Body"].read(),
                    access.WRITE: lambda s3=s3, b=bucket, i=identity: s3.put_object(Bucket=b, Key=f"w/{i}", Body=b"x"),
                    access.LIST: lambda s3=s3, b=bucket: s3.list_objects_v2(Bucket=b),
                }
                for right, call in calls.items():
                    if _allowed(identity, bucket, right):
                        call()
                        continue
                    with pytest.raises(botocore.exceptions.ClientError) as info:
                        call()
                    assert info.value.response["Error"]["Code"] == "AccessDenied", (identity, bucket, right)

    check_every_right()
    container.restart(timeout=30)  # users and policies live in the data volume
    wait_healthy(container, 60)
    check_every_right()

    # Only an administrator may manage users: the pipeline's keys are refused.
    key, secret = catalog.s3_keys(creds, "pipeline")
    pipeline_alias = {**env, "MC_HOST_stack": f"http://{key}:{secret}@s3:9000"}
    code, output = _job(resources, network, MINIO, "users-not-admin", job, pipeline_alias)
    assert code == 1 and "mc: <ERROR>" in output, output
    # `user add` of an existing user sets its new secret; the old one stops working.
    renewed = dataclasses.replace(creds, s3_api_secret_key=creds.s3_api_secret_key[::-1])
    code, output = _job(resources, network, MINIO, "users-renewed", job, services.s3_users_env(topo, _values(renewed)))
    assert code == 0, output
    s3_port = host_port(container, 9000)
    _s3(s3_port, *catalog.s3_keys(renewed, "api")).list_objects_v2(Bucket=catalog.SERVING_BUCKET)
    with pytest.raises(botocore.exceptions.ClientError):
        _s3(s3_port, *catalog.s3_keys(creds, "api")).list_objects_v2(Bucket=catalog.SERVING_BUCKET)


def test_minio_refuses_wrong_keys(
    resources: DockerResources, start_minio: Callable[..., tuple[Container, int, Any]]
) -> None:
    creds = _s3_creds()
    _, port, network = start_minio(creds)
    wrong_secret = dataclasses.replace(creds, s3_secret_key=creds.s3_secret_key + "x")
    wrong_key = dataclasses.replace(creds, s3_access_key="AKNOTAKEY0000")
    for what, bad in (("secret", wrong_secret), ("key", wrong_key)):
        env = services.mc_env(catalog.Topology.docker(), _values(bad))
        code, output = _mc_job(resources, network, f"mb-wrong-{what}", services.bucket_command(), env)
        assert code == 1, output
        assert "mc: <ERROR>" in output
        with pytest.raises(botocore.exceptions.ClientError) as info:
            _s3(port, bad.s3_access_key, bad.s3_secret_key).list_buckets()
        assert info.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "InvalidAccessKeyId")
    # No anonymous access either.
    code, output = _mc_job(resources, network, "ls-anonymous", ["ls", "anon"], {"MC_HOST_anon": "http://s3:9000"})
    assert code == 1, output


def test_minio_objects_survive_restart(start_minio: Callable[..., tuple[Container, int, Any]]) -> None:
    creds = _s3_creds()
    container, port, _ = start_minio(creds)
    s3 = _s3(port, creds.s3_access_key, creds.s3_secret_key)
    s3.create_bucket(Bucket="lake")
    payload = os.urandom(5 * 1024 * 1024 + 17)  # several chunks
    s3.put_object(Bucket="lake", Key="raw/data.bin", Body=payload)
    with pytest.raises(botocore.exceptions.ClientError) as info:  # MinIO never creates buckets implicitly
        s3.put_object(Bucket="missing", Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"
    started = time.monotonic()
    container.restart(timeout=30)
    assert time.monotonic() - started < 15  # SeaweedFS gets the SIGTERM (no 10 s kill timeout)
    wait_healthy(container, 60)
    s3 = _s3(host_port(container, 9000), creds.s3_access_key, creds.s3_secret_key)
    assert s3.get_object(Bucket="lake", Key="raw/data.bin")["Body"].read() == payload


def test_minio_takes_new_root_credentials_on_a_kept_volume(
    docker_client: docker.DockerClient, start_minio: Callable[..., tuple[Container, int, Any]]
) -> None:
    """Pulumi replaces the container when the keys change; the volume stays and the new keys apply."""
    old, new = _s3_creds(), _s3_creds()
    container, port, network = start_minio(old)
    _s3(port, old.s3_access_key, old.s3_secret_key).create_bucket(Bucket="lake")
    volume = docker_client.volumes.get(container.attrs["Mounts"][0]["Name"])
    container.remove(force=True)
    _, port, _ = start_minio(new, network=network, volume=volume)
    buckets = _s3(port, new.s3_access_key, new.s3_secret_key).list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == ["lake"]
    with pytest.raises(botocore.exceptions.ClientError):
        _s3(port, old.s3_access_key, old.s3_secret_key).list_buckets()


def test_mc_ready_fails_fast_without_a_server(resources: DockerResources) -> None:
    network = resources.network()
    started = time.monotonic()
    env = {"MC_HOST_stack": "http://AKEY:secretsecret@nowhere:9000"}
    code, output = _mc_job(resources, network, "ready-nowhere", ["ready", "stack"], env)
    assert code == 1, output
    assert "Couldn't get the health status" in output
    assert time.monotonic() - started < 30


def test_minio_refuses_short_root_password(resources: DockerResources) -> None:
    env = {"MINIO_ROOT_USER": "AKEY1234", "MINIO_ROOT_PASSWORD": "short"}
    container = resources.create(MINIO, "short-password", command=["server", "/data"], environment=env)
    container.start()
    assert wait_exit(container, 30) == 1
    assert "Invalid credentials" in logs(container)
