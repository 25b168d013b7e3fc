"""Least privilege in the Pulumi program: which container holds which login, and how the admin jobs apply them.

Each container's environment is compared, credential by credential, with what its service uses: the
operator's logins (the Postgres superuser, the S3 root key, the MLflow admin) reach only Postgres, MinIO
and MLflow themselves and their admin jobs; every service has its own database role, S3 identity and
MLflow user and nobody else's. The admin jobs get every secret from their (secret) environment: their
commands and uploaded files hold none.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra import access, catalog
from infra.components import services
from tests.unit.infra.pulumi_harness import ProgramRun, Registration, clear_strings, secret_strings

pytestmark = pytest.mark.unit

PREFIX = "mlops-dev"
OPERATOR = {"postgres_password", "s3_access_key", "s3_secret_key", "mlflow_admin_password"}
AIRFLOW = {
    "postgres_airflow_password",
    "postgres_optuna_password",  # the search's Optuna storage (tasks run in the scheduler)
    "s3_pipeline_access_key",
    "s3_pipeline_secret_key",
    "mlflow_pipeline_password",
    "airflow_jwt_secret",
    "airflow_api_secret_key",
    "airflow_fernet_key",
}
#: Every credential each container may hold (its Docker name without the prefix), and nothing else.
EXPECTED = {
    catalog.POSTGRES: {"postgres_password"},
    "postgres-roles": {"postgres_password", *(f"postgres_{r}_password" for r in ("airflow", "mlflow", "optuna"))},
    catalog.S3: {"s3_access_key", "s3_secret_key"},
    "s3-buckets": {"s3_access_key", "s3_secret_key"},
    "s3-users": {name for name in catalog.Credentials.names() if name.startswith("s3_")},
    catalog.MLFLOW: {
        "postgres_mlflow_password",  # its backend and the mlflow_auth database
        "s3_mlflow_access_key",
        "s3_mlflow_secret_key",
        "mlflow_admin_password",
        "mlflow_flask_secret_key",  # the auth app's CSRF protection
    },
    "mlflow-users": {"mlflow_admin_password", "mlflow_pipeline_password", "mlflow_api_password"},
    "airflow-migrate": AIRFLOW,
    catalog.AIRFLOW_API: AIRFLOW | {"airflow_admin_password"},  # the passwords file, written at start
    catalog.AIRFLOW_SCHEDULER: AIRFLOW,
    catalog.AIRFLOW_DAG_PROCESSOR: AIRFLOW,
    catalog.AIRFLOW_TRIGGERER: AIRFLOW,
    "trigger-training": {"airflow_admin_password"},
    catalog.API: {"s3_api_access_key", "s3_api_secret_key", "mlflow_api_password", "api_admin_key"},
    catalog.LOCALSTACK: set(),
}
LAMBDA = {"s3_lambda_access_key", "s3_lambda_secret_key", "mlflow_api_password", "api_admin_key"}
ADMIN_JOBS = ("postgres-roles", "s3-buckets", "s3-users", "mlflow-users")


def held(run: ProgramRun, inputs: Any) -> set[str]:
    """The credentials (field names) whose values appear anywhere in ``inputs``."""
    text = json.dumps(inputs, default=str)
    creds = run.credentials()
    return {name for name in catalog.Credentials.names() if getattr(creds, name) in text}


def container(run: ProgramRun, name: str) -> Registration:
    """A container registration by its Docker name without the stack prefix."""
    return run.containers[f"{PREFIX}-{name}"]


def test_the_mocked_credentials_are_distinct(options_run: ProgramRun) -> None:
    """Otherwise a value found in an environment could belong to another credential (vacuous checks)."""
    values = options_run.credentials().values()
    assert len(set(values)) == len(values)
    assert not [a for a in values for b in values if a != b and a in b]


def test_each_container_holds_exactly_its_own_logins(options_run: ProgramRun) -> None:
    """The options run has every container (the training trigger too) and the Lambda."""
    names = {c.inputs["name"].removeprefix(f"{PREFIX}-") for c in options_run.containers.values()}
    assert names == set(EXPECTED), "a container without an expectation here"
    for name, expected in EXPECTED.items():
        assert held(options_run, container(options_run, name).inputs) == expected, name
    function = options_run.one("aws:lambda/function:Function", "lambda-function")
    assert held(options_run, function.inputs) == LAMBDA


def test_operator_logins_reach_only_their_servers_and_admin_jobs(options_run: ProgramRun) -> None:
    allowed = {
        "postgres_password": {catalog.POSTGRES, "postgres-roles"},
        "s3_access_key": {catalog.S3, "s3-buckets", "s3-users"},
        "s3_secret_key": {catalog.S3, "s3-buckets", "s3-users"},
        "mlflow_admin_password": {catalog.MLFLOW, "mlflow-users"},
    }
    creds = options_run.credentials()
    for field, where in allowed.items():
        value = getattr(creds, field)
        holders = {
            reg.inputs["name"].removeprefix(f"{PREFIX}-") if reg.type.endswith("Container") else reg.name
            for reg in options_run.registrations
            if reg.custom and value in json.dumps(reg.inputs, default=str) and not reg.type.startswith("random:")
        }
        assert holders == where, field
    assert set(allowed) == OPERATOR


@pytest.mark.parametrize("service", [catalog.MLFLOW, catalog.API, catalog.AIRFLOW_SCHEDULER])
def test_each_service_logs_in_as_itself(dev_run: ProgramRun, service: str) -> None:
    """The environment variables the clients read name the service's own identity."""
    env = dict(e.split("=", 1) for e in container(dev_run, service).inputs["envs"])
    creds = dev_run.credentials()
    identity = {catalog.MLFLOW: "mlflow", catalog.API: "api", catalog.AIRFLOW_SCHEDULER: "pipeline"}[service]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == catalog.s3_keys(creds, identity)
    if service == catalog.MLFLOW:
        assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:")
    else:
        assert env["MLFLOW_TRACKING_USERNAME"] == identity
        assert env["MLFLOW_TRACKING_PASSWORD"] == getattr(creds, catalog.MLFLOW_USERS[identity])
    if service == catalog.AIRFLOW_SCHEDULER:
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert "://optuna:" in env["MLOPS_OPTUNA_STORAGE"]


# ---------------------------------------------------------------------------------------------------------
# The admin jobs: secrets only in their environment
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("job", ADMIN_JOBS)
def test_admin_jobs_take_secrets_from_their_secret_environment_only(dev_run: ProgramRun, job: str) -> None:
    reg = container(dev_run, job)
    secrets = dev_run.secret_values()
    for path, text in clear_strings(reg.wire_inputs):  # command, entrypoint, uploads, healthcheck...
        assert not [s for s in secrets if s in text], f"{job}: {path} holds a secret in clear"
    for upload in reg.inputs.get("uploads") or []:
        assert not [s for s in secrets if s in upload["content"]], f"{job}: {upload['file']}"
    wrapped = list(secret_strings(reg.wire_inputs))
    assert wrapped and all(e in wrapped for e in reg.inputs["envs"]), f"{job}: its environment is not secret"
    assert reg.inputs["attach"] is True and reg.inputs["restart"] == "no"  # Pulumi checks its exit code


def test_the_roles_script_reads_every_password_from_the_environment(dev_run: ProgramRun) -> None:
    reg = container(dev_run, "postgres-roles")
    (upload,) = reg.inputs["uploads"]
    script = upload["content"]
    assert upload["file"] == services.POSTGRES_ROLES_SCRIPT
    assert reg.inputs["command"] == ["--no-psqlrc", "--no-password", "--file", services.POSTGRES_ROLES_SCRIPT]
    env = dict(e.split("=", 1) for e in reg.inputs["envs"])
    for role in sorted(set(catalog.DATABASE_ROLES.values())):
        variable = services.role_password_variable(role)
        assert f"\\getenv {role}_password {variable}\n" in script and variable in env
        assert f"ALTER ROLE {role} WITH LOGIN PASSWORD :'{role}_password';" in script
    # What infra/access.py says, with psql variables for the passwords; stops at the first error.
    assert script.startswith("\\set ON_ERROR_STOP on\n")
    assert all(statement in script for statement in access.postgres_roles_sql())
    for database in catalog.DATABASES:
        assert f"\\connect {database}\n" in script and access.adopt_objects_sql(database).strip() in script
        assert f"CREATE DATABASE {database} OWNER {catalog.POSTGRES_USER}'" in script  # volumes made earlier
    assert "SET log_min_error_statement = 'panic';" in script  # a failed ALTER ROLE is not logged


def test_the_users_job_gives_each_identity_exactly_its_policy(dev_run: ProgramRun) -> None:
    reg = container(dev_run, "s3-users")
    files = {u["file"]: u["content"] for u in reg.inputs["uploads"]}
    script = files.pop(services.S3_USERS_SCRIPT)
    identities = [i for i in catalog.S3_IDENTITIES if i != "admin"]
    assert set(files) == {f"/tmp/mlops-s3-users/{i}.json" for i in identities}
    env = dict(e.split("=", 1) for e in reg.inputs["envs"])
    for identity in identities:
        assert json.loads(files[f"/tmp/mlops-s3-users/{identity}.json"]) == access.s3_policy(identity)
        key, secret = services.s3_key_variables(identity)
        assert (env[key], env[secret]) == catalog.s3_keys(dev_run.credentials(), identity)
        call = f'user {identity} mlops-{identity} /tmp/mlops-s3-users/{identity}.json "${key}" "${secret}"'
        assert call in script.splitlines()
    # mc's own commands (RELEASE.2025-04-16): the secret on standard input, never on a command line.
    assert 'mc admin policy create stack "$2" "$3"' in script
    assert 'printf \'%s\\n%s\\n\' "$4" "$5" | mc admin user add stack > /dev/null' in script
    assert 'mc admin policy attach stack "$2" --user "$4"' in script
    assert script.startswith("#!/bin/sh\n") and "set -eu\n" in script
    assert not re.search(r"\bmc\b[^\n|]*\$5", script), "the secret key must not be an argument of mc"


def test_mlflow_gets_its_auth_config_through_the_entrypoint_only(dev_run: ProgramRun) -> None:
    env = dict(e.split("=", 1) for e in container(dev_run, catalog.MLFLOW).inputs["envs"])
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == services.MLFLOW_AUTH_CONFIG
    assert env[services.MLFLOW_AUTH_INI_ENV] == catalog.mlflow_auth_ini(
        catalog.postgres_url(catalog.Topology.docker(), dev_run.credentials(), "mlflow_auth")
    )
    assert container(dev_run, catalog.MLFLOW).inputs["command"] == ["mlflow", "server", "--app-name", "basic-auth"]
