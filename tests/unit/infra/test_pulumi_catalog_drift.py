"""One source of truth, Pulumi half: every container's env, command, ports and healthcheck come from the catalog.

Expected values are computed here from ``infra/catalog.py`` with the mocked credentials and compared to
what the program registered, so a container that stops using the catalog (or a catalog change that a
component ignores) fails. The local-stack half lives with the local stack's tests.
"""

from __future__ import annotations

import pytest

from infra import catalog
from infra.components import health
from ml.settings import MLSettings
from tests.unit.infra.pulumi_harness import ProgramRun, expected_settings

pytestmark = pytest.mark.unit

PREFIX = "mlops-dev"
TOPO = catalog.Topology.docker()
AIRFLOW_PATHS = catalog.AirflowPaths(
    home="/opt/airflow",
    dags="/opt/airflow/dags",
    passwords_file="/opt/airflow/simple_auth_manager_passwords.json",
    data="/opt/mlops/data",
)
AIRFLOW_SERVICES = (
    catalog.AIRFLOW_API,
    catalog.AIRFLOW_SCHEDULER,
    catalog.AIRFLOW_DAG_PROCESSOR,
    catalog.AIRFLOW_TRIGGERER,
)
JOB_TYPES = {"scheduler": "SchedulerJob", "dag_processor": "DagProcessorJob", "triggerer": "TriggererJob"}


def settings() -> MLSettings:
    """The ML settings of the default config."""
    return expected_settings()


def env_of(run: ProgramRun, service: str) -> dict[str, str]:
    """The environment of one container as a dict."""
    envs = run.containers[f"{PREFIX}-{service}"].inputs["envs"]
    pairs = [e.split("=", 1) for e in envs]
    assert len({k for k, _ in pairs}) == len(pairs), f"{service}: duplicate variables"
    return dict(pairs)


def test_every_catalog_service_has_exactly_one_container(dev_run: ProgramRun) -> None:
    for service in catalog.SERVICES:
        matching = [c for c in dev_run.containers.values() if c.inputs.get("hostname") == service]
        assert len(matching) == 1, service
        assert matching[0].inputs["name"] == f"{PREFIX}-{service}"


def test_mlflow_env_is_the_catalog_env(dev_run: ProgramRun) -> None:
    creds = dev_run.credentials()
    expected = catalog.mlflow_server_env(
        TOPO, creds, "/home/mlflow/basic_auth.ini", allowed_hosts=(f"{PREFIX}-{catalog.MLFLOW}",)
    )
    # The basic-auth config file, written by the image's entrypoint at start (never baked into the image).
    expected["MLOPS_MLFLOW_AUTH_INI"] = catalog.mlflow_auth_ini(catalog.postgres_url(TOPO, creds, "mlflow_auth"))
    assert env_of(dev_run, catalog.MLFLOW) == expected
    allowed = expected["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"mlflow", "mlflow:5001", "localhost:5001"} <= set(allowed)  # service name, and the host
    assert "database_uri = postgresql+psycopg2://mlflow:" in expected["MLOPS_MLFLOW_AUTH_INI"]
    assert expected["MLOPS_MLFLOW_AUTH_INI"].rstrip().endswith("@postgres:5432/mlflow_auth")


def test_mlflow_users_job_uses_the_catalog(dev_run: ProgramRun) -> None:
    creds = dev_run.credentials()
    job = dev_run.containers[f"{PREFIX}-mlflow-users"]
    assert job.inputs["entrypoints"] == ["python"]
    assert job.inputs["command"] == ["/opt/mlops/bin/mlflow_users.py"]
    assert env_of(dev_run, "mlflow-users") == {
        "MLFLOW_TRACKING_URI": "http://mlflow:5001",
        "MLFLOW_AUTH_ADMIN_USERNAME": catalog.MLFLOW_ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.mlflow_admin_password,
        "MLOPS_MLFLOW_PIPELINE_PASSWORD": creds.mlflow_pipeline_password,
        "MLOPS_MLFLOW_API_PASSWORD": creds.mlflow_api_password,
    }
    assert set(catalog.MLFLOW_USERS) == {"pipeline", "api"}


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_env_is_the_catalog_env(dev_run: ProgramRun, service: str) -> None:
    creds = dev_run.credentials()
    expected = catalog.airflow_env(TOPO, creds, AIRFLOW_PATHS, settings())
    if service == catalog.AIRFLOW_API:
        # Written to the passwords file by the image's entrypoint at start (never baked into the image).
        expected["MLOPS_AIRFLOW_PASSWORDS_JSON"] = catalog.airflow_passwords_json(creds)
    assert env_of(dev_run, service) == expected


def test_airflow_migration_job_uses_the_catalog(dev_run: ProgramRun) -> None:
    job = dev_run.containers[f"{PREFIX}-airflow-migrate"]
    assert job.inputs["command"] == catalog.AIRFLOW_MIGRATE_COMMAND
    assert env_of(dev_run, "airflow-migrate") == catalog.airflow_env(
        TOPO, dev_run.credentials(), AIRFLOW_PATHS, settings()
    )


def test_api_env_is_the_catalog_env(dev_run: ProgramRun) -> None:
    assert env_of(dev_run, catalog.API) == catalog.api_env(TOPO, dev_run.credentials(), settings())


def test_postgres_and_minio_use_the_catalog_credentials_and_names(dev_run: ProgramRun) -> None:
    creds = dev_run.credentials()
    assert env_of(dev_run, catalog.POSTGRES) == {
        "POSTGRES_USER": catalog.POSTGRES_USER,
        "POSTGRES_PASSWORD": creds.postgres_password,
    }
    uploads = dev_run.containers[f"{PREFIX}-{catalog.POSTGRES}"].inputs["uploads"]
    sql = "".join(u["content"] for u in uploads)
    for database in catalog.DATABASES:
        assert f"CREATE DATABASE {database} OWNER {catalog.POSTGRES_USER};" in sql
    roles = dev_run.containers[f"{PREFIX}-postgres-roles"]
    assert roles.inputs["image"] == dev_run.containers[f"{PREFIX}-{catalog.POSTGRES}"].inputs["image"]
    assert roles.inputs["entrypoints"] == ["psql"]
    assert env_of(dev_run, "postgres-roles") == {
        "PGHOST": "postgres",
        "PGPORT": "5432",
        "PGUSER": catalog.POSTGRES_USER,
        "PGPASSWORD": creds.postgres_password,
        "PGDATABASE": "postgres",
        "PGAPPNAME": "mlops-postgres-roles",
        "MLOPS_POSTGRES_AIRFLOW_PASSWORD": creds.postgres_airflow_password,
        "MLOPS_POSTGRES_MLFLOW_PASSWORD": creds.postgres_mlflow_password,
        "MLOPS_POSTGRES_OPTUNA_PASSWORD": creds.postgres_optuna_password,
    }
    assert env_of(dev_run, catalog.S3) == {
        "MINIO_ROOT_USER": creds.s3_access_key,
        "MINIO_ROOT_PASSWORD": creds.s3_secret_key,
    }
    buckets = dev_run.containers[f"{PREFIX}-s3-buckets"].inputs["command"]
    assert buckets == ["mb", "--ignore-existing", *(f"stack/{b}" for b in catalog.BUCKETS)]
    assert env_of(dev_run, "s3-buckets") == {
        "MC_HOST_stack": f"http://{creds.s3_access_key}:{creds.s3_secret_key}@s3:9000"
    }
    users = dev_run.containers[f"{PREFIX}-s3-users"]
    assert users.inputs["image"] == dev_run.containers[f"{PREFIX}-s3"].inputs["image"]
    assert (users.inputs["entrypoints"], users.inputs["command"]) == (["/bin/sh"], ["/tmp/mlops-s3-users/users.sh"])
    expected = {"MC_HOST_stack": f"http://{creds.s3_access_key}:{creds.s3_secret_key}@s3:9000"}
    for identity in ("mlflow", "pipeline", "api", "lambda"):
        key, secret = catalog.s3_keys(creds, identity)
        expected |= {f"MLOPS_S3_{identity.upper()}_ACCESS_KEY": key, f"MLOPS_S3_{identity.upper()}_SECRET_KEY": secret}
    assert env_of(dev_run, "s3-users") == expected


def test_localstack_env_joins_lambdas_to_the_stack_network(dev_run: ProgramRun) -> None:
    env = env_of(dev_run, catalog.LOCALSTACK)
    assert env["LAMBDA_DOCKER_NETWORK"] == f"{PREFIX}-net"
    assert env["LOCALSTACK_HOST"] == "localhost.localstack.cloud:4566"
    assert set(env["SERVICES"].split(",")) >= {"s3", "iam", "lambda", "apigateway"}
    assert "LOCALSTACK_AUTH_TOKEN" not in env
    volumes = dev_run.containers[f"{PREFIX}-{catalog.LOCALSTACK}"].inputs["volumes"]
    assert {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"} in volumes


def test_commands_are_the_catalog_commands(dev_run: ProgramRun) -> None:
    commands = catalog.commands(TOPO)
    for service, command in commands.items():
        assert dev_run.containers[f"{PREFIX}-{service}"].inputs["command"] == command, service
    assert commands[catalog.API][:4] == ["gunicorn", "api.main:app", "--config", "python:api.server"]


def test_container_ports_are_the_catalog_ports(dev_run: ProgramRun) -> None:
    for service, svc in catalog.SERVICES.items():
        ports = dev_run.containers[f"{PREFIX}-{service}"].inputs.get("ports", [])
        if svc.port is None:
            assert ports == [], service
        else:
            assert ports[0]["internal"] == TOPO.port(service), service


@pytest.mark.parametrize("service", list(catalog.SERVICES))
def test_healthchecks_are_rendered_from_the_catalog(dev_run: ProgramRun, service: str) -> None:
    svc = catalog.SERVICES[service]
    check = dev_run.containers[f"{PREFIX}-{service}"].inputs["healthcheck"]
    probe: health.HttpProbe = "curl" if service == catalog.LOCALSTACK else "python"
    assert check == health.for_service(service, TOPO, probe).as_inputs()
    # ... and the rendering means what the catalog says, kind by kind.
    tests = check["tests"]
    if svc.health.kind == "sql":
        assert tests[:2] == ["CMD", "pg_isready"] and str(TOPO.port(service)) in tests
    elif svc.health.kind == "s3":
        assert tests == ["CMD", "mc", "ready", "local"]
    elif svc.health.kind == "http":
        url = f"http://127.0.0.1:{TOPO.port(service)}{svc.health.path}"
        assert any(url in part for part in tests), tests
    else:
        assert tests == ["CMD", "airflow", "jobs", "check", "--job-type", JOB_TYPES[svc.health.component], "--local"]
    assert check["startPeriod"] == f"{svc.health.start_period_s:g}s"
    assert check["retries"] == svc.health.retries
