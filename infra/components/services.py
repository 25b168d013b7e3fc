"""What is particular to each service on Docker: images, environments, commands, storage and jobs.

Everything generic (network, ports, healthchecks, waits, restart, stop grace, exit-code checks) is done
once by :class:`~infra.components.service.ServiceDeployment`; this module holds only the per-service
facts, as plain :class:`~infra.components.service.ContainerSpec` data built from the catalog:

* Postgres (official image, named volume, databases created by an init script);
* MinIO (S3; the stack's keys are its root credentials) and a one-shot ``mc`` job creating the buckets;
* MLflow, Airflow (a ``db migrate`` job, then API server, scheduler, DAG processor and triggerer) and the
  API, from the images built out of ``infra/docker/`` (:data:`BUILT_IMAGES`);
* LocalStack, which runs Lambda functions in sibling containers on the stack network.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from infra import catalog
from infra.components import health
from infra.components.common import StackValues
from infra.components.config import StackConfig
from infra.components.service import ContainerSpec, Job, Mount
from ml.settings import MLSettings


@dataclass(frozen=True)
class BuiltImage:
    """An image built from ``infra/docker/<dockerfile>`` with the repository root as context."""

    dockerfile: str
    build_args: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------------------------
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"  # PGDATA of the postgres 17 image (18 moved it: adjust when upgrading)
POSTGRES_INIT_SCRIPT = "/docker-entrypoint-initdb.d/10-create-databases.sql"


def postgres_init_sql() -> str:
    """SQL run once, on an empty volume: one database per catalog database, with its settings (no secret)."""
    lines = []
    for db in catalog.DATABASES:
        lines += [f"CREATE DATABASE {db} OWNER {catalog.POSTGRES_USER};", *catalog.database_settings_sql(db)]
    return "".join(f"{line}\n" for line in lines)


def postgres_command() -> list[str]:
    """The image's server with the catalog's server settings (``postgres -c key=value ...``)."""
    return ["postgres", *(arg for k, v in catalog.POSTGRES_SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}"))]


def postgres_env(values: StackValues) -> dict[str, str]:
    """Environment of the official postgres image (password applied at first initialisation only)."""
    return {"POSTGRES_USER": catalog.POSTGRES_USER, "POSTGRES_PASSWORD": values.creds.postgres_password}


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


# ---------------------------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------------------------
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
)
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


def trigger_command(dag: str, follow: Sequence[str]) -> list[str]:
    """Arguments of ``trigger_training.py``: trigger ``dag``, then wait for the runs of ``follow``."""
    return [dag, "--then", *follow] if follow else [dag]


def training_trigger_job(config: StackConfig, topo: catalog.Topology) -> Job:
    """The optional job that runs the ETL DAG and follows the training it schedules (fire and forget).

    Follow it with ``docker logs -f <prefix>-trigger-training``.
    """
    api_health = catalog.SERVICES[catalog.AIRFLOW_API].health
    return Job(
        "trigger-training",
        command=trigger_command(config.training_dag, config.follow_dags),
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


def stack_services(config: StackConfig, topo: catalog.Topology) -> StackServices:
    """The container spec of every catalog service for this stack configuration."""
    settings = config.ml_settings()
    commands = catalog.commands(topo)
    s3_health = catalog.SERVICES[catalog.S3].health
    specs = {
        catalog.POSTGRES: ContainerSpec(
            catalog.POSTGRES,
            env=postgres_env,
            command=postgres_command(),
            mounts=[Mount(POSTGRES_DATA_DIR, volume="pgdata")],
            uploads={POSTGRES_INIT_SCRIPT: postgres_init_sql()},
            init=False,  # the image's entrypoint handles signals itself
        ),
        catalog.S3: ContainerSpec(
            catalog.S3,
            env=minio_env,
            command=["server", S3_DATA_DIR, "--console-address", f":{S3_CONSOLE_PORT}"],
            mounts=[Mount(S3_DATA_DIR, volume="s3data")],
            extra_ports=[(S3_CONSOLE_PORT, config.ports.s3_console)],
            jobs_after=[
                Job(
                    "s3-buckets",
                    command=bucket_command(),
                    entrypoint=["mc"],
                    env=functools.partial(mc_env, topo),
                    check=health.for_job(["CMD", "mc", "ready", MC_ALIAS], s3_health),
                )
            ],
        ),
        catalog.MLFLOW: ContainerSpec(
            catalog.MLFLOW,
            env=lambda v: catalog.mlflow_server_env(topo, v.creds, allowed_hosts=mlflow_allowed_hosts(config)),
            command=commands[catalog.MLFLOW],
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
    migrate = Job(
        "airflow-migrate",
        command=catalog.AIRFLOW_MIGRATE_COMMAND,
        env=lambda v: catalog.airflow_env(topo, v.creds, AIRFLOW_PATHS, settings),
        check=health.for_job(["CMD", "airflow", "db", "check"], catalog.SERVICES[catalog.POSTGRES].health),
    )
    for service in AIRFLOW_COMPONENTS:
        specs[service] = ContainerSpec(
            service,
            env=functools.partial(airflow_env, service, topo, settings),
            command=commands[service],
            mounts=[Mount(AIRFLOW_LOGS_DIR, volume="airflow-logs")],
            jobs_before=[migrate] if service == catalog.AIRFLOW_API else [],
            # The API server alone would not need MLflow; the tasks the components run do.
            after=(catalog.MLFLOW,),
        )
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
