"""What is particular to each service on Docker: images, environments, commands, storage and jobs.

Everything generic (network, ports, healthchecks, waits, restart, stop grace, exit-code checks) is done
once by :class:`~infra.components.service.ServiceDeployment`; this module holds only the per-service
facts, as plain :class:`~infra.components.service.ContainerSpec` data built from the catalog:

* Postgres (official image, named volume, databases created by an init script) and a one-shot ``psql``
  job giving each database to its own role (:mod:`infra.components.postgres_containers`);
* MinIO (S3; the stack's root keys are its root credentials), a one-shot ``mc`` job creating the buckets
  and one creating a MinIO user per S3 identity with exactly its policy (:func:`infra.access.s3_policy`);
* MLflow (its basic-auth app, and a one-shot job creating its service users, :mod:`infra.mlflow_users`),
  Airflow (a ``db migrate`` job, then API server, scheduler, DAG processor and triggerer) and the API,
  from the images built out of ``infra/docker/`` (:data:`BUILT_IMAGES`);
* LocalStack, which runs Lambda functions in sibling containers on the stack network.

Least privilege: each container gets only its own logins (the catalog's env builders pick them). The
operator's (the Postgres superuser, the S3 root key, the MLflow admin) reach only Postgres, MinIO and
MLflow themselves and their admin jobs; the jobs take every secret from their environment, never from
their command or the files they are given.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from dags import pipeline_ids
from infra import access, catalog
from infra.aws_lambda.spec import REPO_ROOT
from infra.components import health
from infra.components.common import StackValues
from infra.components.config import StackConfig
from infra.components.postgres_containers import (
    POSTGRES_DATA_DIR as POSTGRES_DATA_DIR,
)
from infra.components.postgres_containers import (
    POSTGRES_INIT_SCRIPT as POSTGRES_INIT_SCRIPT,
)
from infra.components.postgres_containers import (
    POSTGRES_ROLES_SCRIPT as POSTGRES_ROLES_SCRIPT,
)
from infra.components.postgres_containers import (
    postgres_command as postgres_command,
)
from infra.components.postgres_containers import (
    postgres_env as postgres_env,
)
from infra.components.postgres_containers import (
    postgres_init_sql as postgres_init_sql,
)
from infra.components.postgres_containers import (
    postgres_roles_env as postgres_roles_env,
)
from infra.components.postgres_containers import (
    postgres_roles_job as postgres_roles_job,
)
from infra.components.postgres_containers import (
    postgres_roles_script as postgres_roles_script,
)
from infra.components.postgres_containers import (
    role_password_variable as role_password_variable,
)
from infra.components.service import ContainerSpec, Job, Mount
from infra.mlflow_users import password_variable
from ml.settings import MLSettings


@dataclass(frozen=True)
class BuiltImage:
    """An image built from ``infra/docker/<dockerfile>`` with the repository root as context."""

    dockerfile: str
    build_args: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# MinIO
# ---------------------------------------------------------------------------------------------------------
S3_DATA_DIR = "/data"
S3_CONSOLE_PORT = 9001
MC_ALIAS = "stack"


def minio_env(values: StackValues) -> dict[str, str]:
    """Environment of the MinIO server: the stack's S3 keys are its root credentials."""
    return {"MINIO_ROOT_USER": values.creds.s3_access_key, "MINIO_ROOT_PASSWORD": values.creds.s3_secret_key}


def mc_env(topo: catalog.Topology, values: StackValues) -> dict[str, str]:
    """``mc`` alias from the environment (``MC_HOST_<alias>``), so no key appears on a command line."""
    endpoint = catalog.s3_endpoint(topo).removeprefix("http://")
    user, password = quote(values.creds.s3_access_key, safe=""), quote(values.creds.s3_secret_key, safe="")
    return {f"MC_HOST_{MC_ALIAS}": f"http://{user}:{password}@{endpoint}"}


def bucket_command() -> list[str]:
    """``mc`` arguments creating every catalog bucket (idempotent)."""
    return ["mb", "--ignore-existing", *(f"{MC_ALIAS}/{bucket}" for bucket in catalog.BUCKETS)]


S3_USERS_DIR = "/tmp/mlops-s3-users"  # the users job's script and policy documents (no secret in them)
S3_USERS_SCRIPT = f"{S3_USERS_DIR}/users.sh"


def s3_user_identities() -> tuple[str, ...]:
    """The S3 identities that are MinIO users (all but ``admin``, MinIO's root)."""
    return tuple(identity for identity in catalog.S3_IDENTITIES if identity != "admin")


def s3_policy_name(identity: str) -> str:
    """Name of an S3 identity's MinIO policy."""
    return f"mlops-{identity}"


def s3_policy_file(identity: str) -> str:
    """Where the users job finds an identity's policy document."""
    return f"{S3_USERS_DIR}/{identity}.json"


def s3_key_variables(identity: str) -> tuple[str, str]:
    """Environment variables of the users job holding an identity's access key and secret key."""
    return f"MLOPS_S3_{identity.upper()}_ACCESS_KEY", f"MLOPS_S3_{identity.upper()}_SECRET_KEY"


def s3_users_script() -> str:
    """The ``s3-users`` job's script: one MinIO user per S3 identity, with exactly its policy.

    Idempotent, like the ``mc`` commands it runs: ``policy create`` and ``user add`` overwrite (a changed
    policy or a new secret applies), ``policy attach`` leaves an attached policy as it is. The keys come
    from the job's environment; the secret reaches ``mc admin user add`` on its standard input, never on a
    command line. ``mc``'s own messages (they name the access keys) are not logged.
    """
    lines = [
        "#!/bin/sh",
        "# Generated by infra/components/services.py (s3_users_script): MinIO users and policies.",
        "set -eu",
        "user() {  # IDENTITY POLICY POLICY_FILE ACCESS_KEY SECRET_KEY",
        f'    mc admin policy create {MC_ALIAS} "$2" "$3" > /dev/null',
        f'    printf \'%s\\n%s\\n\' "$4" "$5" | mc admin user add {MC_ALIAS} > /dev/null',
        f'    mc admin policy attach {MC_ALIAS} "$2" --user "$4" > /dev/null',
        '    echo "S3 identity $1: MinIO user with policy $2"',
        "}",
    ]
    for identity in s3_user_identities():
        key, secret = s3_key_variables(identity)
        lines.append(f'user {identity} {s3_policy_name(identity)} {s3_policy_file(identity)} "${key}" "${secret}"')
    return "".join(f"{line}\n" for line in lines)


def s3_users_uploads() -> dict[str, str]:
    """The users job's files: its script and each identity's policy document (infra/access.py)."""
    files = {S3_USERS_SCRIPT: s3_users_script()}
    for identity in s3_user_identities():
        files[s3_policy_file(identity)] = json.dumps(access.s3_policy(identity), indent=2) + "\n"
    return files


def s3_users_env(topo: catalog.Topology, values: StackValues) -> dict[str, str]:
    """Environment of the ``s3-users`` job: the root's ``mc`` alias and every identity's keys."""
    env = mc_env(topo, values)
    for identity in s3_user_identities():
        key_variable, secret_variable = s3_key_variables(identity)
        env[key_variable], env[secret_variable] = catalog.s3_keys(values.creds, identity)
    return env


def s3_buckets_job(topo: catalog.Topology) -> Job:
    """The one-shot job (MinIO image, ``mc`` as the root) creating every catalog bucket."""
    return Job(
        "s3-buckets",
        command=bucket_command(),
        entrypoint=["mc"],
        env=functools.partial(mc_env, topo),
        check=health.for_job(["CMD", "mc", "ready", MC_ALIAS], catalog.SERVICES[catalog.S3].health),
    )


def s3_users_job(topo: catalog.Topology) -> Job:
    """The one-shot job (MinIO image, ``mc admin`` as the root) creating the MinIO users and their policies."""
    return Job(
        "s3-users",
        command=[S3_USERS_SCRIPT],
        entrypoint=["/bin/sh"],
        env=functools.partial(s3_users_env, topo),
        check=health.for_job(["CMD", "mc", "ready", MC_ALIAS], catalog.SERVICES[catalog.S3].health),
        uploads=s3_users_uploads(),
    )


# ---------------------------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------------------------
MLFLOW_AUTH_CONFIG = "/home/mlflow/basic_auth.ini"  # written at start by infra/docker/mlflow-entrypoint.sh
MLFLOW_AUTH_INI_ENV = "MLOPS_MLFLOW_AUTH_INI"  # its content; read (and unset) by that entrypoint
MLFLOW_USERS_SCRIPT = "/opt/mlops/bin/mlflow_users.py"  # infra/mlflow_users.py in the MLflow image


def mlflow_env(topo: catalog.Topology, allowed_hosts: tuple[str, ...], values: StackValues) -> dict[str, str]:
    """Environment of the MLflow container: the catalog's, plus the basic-auth config file's content.

    The file holds the ``mlflow_auth`` database's URI with the ``mlflow`` role's password: the image's
    entrypoint writes it (0600) and drops the variable before the server starts.
    """
    env = catalog.mlflow_server_env(topo, values.creds, MLFLOW_AUTH_CONFIG, allowed_hosts=allowed_hosts)
    env[MLFLOW_AUTH_INI_ENV] = catalog.mlflow_auth_ini(catalog.postgres_url(topo, values.creds, "mlflow_auth"))
    return env


def mlflow_users_env(topo: catalog.Topology, values: StackValues) -> dict[str, str]:
    """Environment of the ``mlflow-users`` job (what ``infra/mlflow_users.py``'s ``main`` reads)."""
    creds = values.creds
    return {
        "MLFLOW_TRACKING_URI": topo.url(catalog.MLFLOW),
        "MLFLOW_AUTH_ADMIN_USERNAME": catalog.MLFLOW_ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.mlflow_admin_password,
        **{password_variable(user): getattr(creds, name) for user, name in catalog.MLFLOW_USERS.items()},
    }


def mlflow_users_job(topo: catalog.Topology) -> Job:
    """The one-shot job (MLflow image) creating MLflow's service users and their grants, as the admin."""
    mlflow_health = catalog.SERVICES[catalog.MLFLOW].health
    return Job(
        "mlflow-users",
        command=[MLFLOW_USERS_SCRIPT],
        entrypoint=["python"],
        env=functools.partial(mlflow_users_env, topo),
        check=health.for_job(
            health.http_probe(topo.url(catalog.MLFLOW, mlflow_health.path), mlflow_health.timeout_s), mlflow_health
        ),
    )


def mlflow_allowed_hosts(config: StackConfig) -> tuple[str, ...]:
    """Extra Host headers MLflow must accept besides the catalog's (service name, localhost).

    The container name, and the published host port when it differs from the container port.
    """
    hosts = [config.resource_name(catalog.MLFLOW)]
    host_port = config.ports.mlflow
    if host_port != catalog.DEFAULT_PORTS.mlflow:
        hosts += [f"localhost:{host_port}", f"127.0.0.1:{host_port}"]
    return tuple(hosts)


# ---------------------------------------------------------------------------------------------------------
# Airflow
# ---------------------------------------------------------------------------------------------------------
AIRFLOW_UID = "50000"
AIRFLOW_PATHS = catalog.AirflowPaths(
    home="/opt/airflow",
    dags="/opt/airflow/dags",
    passwords_file="/opt/airflow/simple_auth_manager_passwords.json",
    data="/opt/mlops/data",  # the repository's data/ (users' data files), mounted read-only
)
#: The host directory mounted at ``AIRFLOW_PATHS.data``: where users put the data files their specs read.
HOST_DATA_DIR = REPO_ROOT / "data"
#: The repository's spec directory, mounted read-only over the image's copy (``COPY ml /opt/mlops/src/ml`` in
#: infra/docker/airflow.Dockerfile): a spec added or changed on the host reaches the DAG processor without a
#: rebuild or a restart, as on the embedded stack.
HOST_SPECS_DIR = REPO_ROOT / "ml" / "datasets"
CONTAINER_SPECS_DIR = "/opt/mlops/src/ml/datasets"
AIRFLOW_LOGS_DIR = f"{AIRFLOW_PATHS.home}/logs"
AIRFLOW_PASSWORDS_ENV = "MLOPS_AIRFLOW_PASSWORDS_JSON"  # read (and unset) by infra/docker/airflow-entrypoint.sh
TRIGGER_SCRIPT = "/opt/mlops/bin/trigger_training.py"  # infra/docker/trigger_training.py in the image
AIRFLOW_COMPONENTS = (
    catalog.AIRFLOW_API,
    catalog.AIRFLOW_SCHEDULER,
    catalog.AIRFLOW_DAG_PROCESSOR,
    catalog.AIRFLOW_TRIGGERER,
)


def airflow_env(service: str, topo: catalog.Topology, settings: MLSettings, values: StackValues) -> dict[str, str]:
    """Environment of one Airflow container: the catalog's, plus the passwords file content for the API server."""
    env = catalog.airflow_env(topo, values.creds, AIRFLOW_PATHS, settings)
    if service == catalog.AIRFLOW_API:
        env[AIRFLOW_PASSWORDS_ENV] = catalog.airflow_passwords_json(values.creds)
    return env


def trigger_env(topo: catalog.Topology, values: StackValues) -> dict[str, str]:
    """Environment of the training trigger job (``trigger_training.py`` reads these names)."""
    return {
        "MLOPS_AIRFLOW_URL": topo.url(catalog.AIRFLOW_API),
        "MLOPS_AIRFLOW_USERNAME": catalog.AIRFLOW_ADMIN_USER,
        "MLOPS_AIRFLOW_PASSWORD": values.creds.airflow_admin_password,
    }


def trigger_command(datasets: Sequence[str]) -> list[str]:
    """Arguments of ``trigger_training.py``: one ``<ETL DAG>:<training DAG>`` pipeline per dataset."""
    return [":".join(pipeline_ids.pipeline(dataset)) for dataset in datasets]


def training_trigger_job(config: StackConfig, topo: catalog.Topology) -> Job:
    """The optional job that runs every active dataset's ETL and follows the training each schedules.

    Fire and forget; one dataset's failure does not stop the others (the job then exits 1).

    Follow it with ``docker logs -f <prefix>-trigger-training``.
    """
    api_health = catalog.SERVICES[catalog.AIRFLOW_API].health
    return Job(
        "trigger-training",
        command=trigger_command(config.active_datasets()),
        entrypoint=["python", TRIGGER_SCRIPT],
        env=functools.partial(trigger_env, topo),
        check=health.for_job(
            health.http_probe(topo.url(catalog.AIRFLOW_API, api_health.path), api_health.timeout_s), api_health
        ),
        attach=False,
    )


# ---------------------------------------------------------------------------------------------------------
# LocalStack
# ---------------------------------------------------------------------------------------------------------
DOCKER_SOCKET = "/var/run/docker.sock"
AWS_SERVICES = ("s3", "iam", "sts", "lambda", "logs", "apigateway")


def localstack_env(container_name: str, host_port: int, http_api: bool, values: StackValues) -> dict[str, str]:
    """Environment of the LocalStack container.

    * ``MAIN_CONTAINER_NAME``: LocalStack looks its own container up by ``$HOSTNAME`` (here ``localstack``,
      which ``docker inspect`` does not resolve), then by this name (default ``localstack-main``). It needs
      its container to tell each Lambda container its address on ``LAMBDA_DOCKER_NETWORK`` (runtime
      callbacks, ``AWS_ENDPOINT_URL``, DNS); when both miss it falls back to the host's bridge IP and the
      first invocation times out. It also prefixes the Lambda containers' names (``<name>-lambda-...``).
    * ``DISABLE_EVENTS``: at shutdown LocalStack first sends usage events; where that fails (no internet) the
      exception skips the hook that stops the Lambda containers, which then block ``pulumi destroy``'s
      network removal. ``SHUTDOWN_TIMEOUT`` lets that cleanup finish inside the stop grace period.
    """
    grace = catalog.SERVICES[catalog.LOCALSTACK].stop_grace_s
    env = {
        "SERVICES": ",".join((*AWS_SERVICES, "apigatewayv2") if http_api else AWS_SERVICES),
        "MAIN_CONTAINER_NAME": container_name,
        "LAMBDA_DOCKER_NETWORK": values.network,
        # API endpoints LocalStack reports use the published port (Function URLs use the container's 4566).
        "LOCALSTACK_HOST": f"localhost.localstack.cloud:{host_port}",
        # A cold start of the API package takes ~8 s; LocalStack's default budget is 20 s.
        "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": "60",
        "DOCKER_HOST": f"unix://{DOCKER_SOCKET}",
        "DISABLE_EVENTS": "1",
        "SHUTDOWN_TIMEOUT": str(max(5, grace - 5)),
    }
    if values.localstack_token:
        env["LOCALSTACK_AUTH_TOKEN"] = values.localstack_token
    return env


# ---------------------------------------------------------------------------------------------------------
# The whole stack
# ---------------------------------------------------------------------------------------------------------
#: Images built from ``infra/docker/``, by name (also the Pulumi resource names and the ``images`` output).
BUILT_IMAGES: dict[str, BuiltImage] = {
    "mlflow": BuiltImage("mlflow.Dockerfile"),
    "airflow": BuiltImage("airflow.Dockerfile", {"AIRFLOW_HOME": AIRFLOW_PATHS.home, "AIRFLOW_UID": AIRFLOW_UID}),
    "api": BuiltImage("api.Dockerfile"),
}
#: The stack's named volumes (``<prefix>-<key>``), deleted by ``pulumi destroy``.
VOLUMES = ("pgdata", "s3data", "airflow-logs")


@dataclass(frozen=True)
class StackServices:
    """Every service's container spec and where its image comes from."""

    specs: dict[str, ContainerSpec]
    images: dict[str, str]  # service -> key of BUILT_IMAGES, or an upstream image reference

    def built(self, service: str) -> bool:
        """Whether the service runs an image built from the repository."""
        return self.images[service] in BUILT_IMAGES


def _airflow_specs(
    topo: catalog.Topology, settings: MLSettings, commands: dict[str, list[str]]
) -> dict[str, ContainerSpec]:
    """The Airflow components' containers; the API server's is preceded by ``airflow db migrate``."""
    migrate = Job(
        "airflow-migrate",
        command=catalog.AIRFLOW_MIGRATE_COMMAND,
        env=lambda v: catalog.airflow_env(topo, v.creds, AIRFLOW_PATHS, settings),
        check=health.for_job(["CMD", "airflow", "db", "check"], catalog.SERVICES[catalog.POSTGRES].health),
    )
    return {
        service: ContainerSpec(
            service,
            env=functools.partial(airflow_env, service, topo, settings),
            command=commands[service],
            mounts=[
                Mount(AIRFLOW_LOGS_DIR, volume="airflow-logs"),
                Mount(str(AIRFLOW_PATHS.data), host_path=str(HOST_DATA_DIR), read_only=True),
                Mount(CONTAINER_SPECS_DIR, host_path=str(HOST_SPECS_DIR), read_only=True),
            ],
            jobs_before=[migrate] if service == catalog.AIRFLOW_API else [],
            # The API server alone would not need MLflow; the tasks the components run do.
            after=(catalog.MLFLOW,),
        )
        for service in AIRFLOW_COMPONENTS
    }


def stack_services(config: StackConfig, topo: catalog.Topology) -> StackServices:
    """The container spec of every catalog service for this stack configuration."""
    settings = config.ml_settings()
    commands = catalog.commands(topo)
    specs = {
        catalog.POSTGRES: ContainerSpec(
            catalog.POSTGRES,
            env=postgres_env,
            command=postgres_command(),
            mounts=[Mount(POSTGRES_DATA_DIR, volume="pgdata")],
            uploads={POSTGRES_INIT_SCRIPT: postgres_init_sql()},
            init=False,  # the image's entrypoint handles signals itself
            jobs_after=[postgres_roles_job(topo)],
        ),
        catalog.S3: ContainerSpec(
            catalog.S3,
            env=minio_env,
            command=["server", S3_DATA_DIR, "--console-address", f":{S3_CONSOLE_PORT}"],
            mounts=[Mount(S3_DATA_DIR, volume="s3data")],
            extra_ports=[(S3_CONSOLE_PORT, config.ports.s3_console)],
            jobs_after=[s3_buckets_job(topo), s3_users_job(topo)],  # in this order: policies name the buckets
        ),
        catalog.MLFLOW: ContainerSpec(
            catalog.MLFLOW,
            env=functools.partial(mlflow_env, topo, mlflow_allowed_hosts(config)),
            command=commands[catalog.MLFLOW],
            jobs_after=[mlflow_users_job(topo)],
        ),
        catalog.API: ContainerSpec(
            catalog.API, env=lambda v: catalog.api_env(topo, v.creds, settings), command=commands[catalog.API]
        ),
        catalog.LOCALSTACK: ContainerSpec(
            catalog.LOCALSTACK,
            env=functools.partial(
                localstack_env,
                config.resource_name(catalog.LOCALSTACK),
                config.ports.localstack,
                config.localstack.http_api,
            ),
            mounts=[Mount(DOCKER_SOCKET, host_path=config.localstack.docker_socket)],
            probe="curl",
            init=False,  # LocalStack's entrypoint manages its processes and Lambda containers
            wait=True,  # the Lambda's AWS resources are created through it
        ),
    }
    specs.update(_airflow_specs(topo, settings, commands))
    images = {
        catalog.POSTGRES: config.images.postgres,
        catalog.S3: config.images.minio,
        catalog.LOCALSTACK: config.images.localstack,
        catalog.MLFLOW: "mlflow",
        catalog.API: "api",
        **dict.fromkeys(AIRFLOW_COMPONENTS, "airflow"),
    }
    missing = set(catalog.SERVICES) - set(specs)
    if missing:
        raise ValueError(f"no container spec for catalog service(s) {sorted(missing)}")
    return StackServices(specs=specs, images=images)
