"""The service catalog: the single source of truth for the platform's services.

Service names, default ports, dependencies, health checks, commands, environment variables, database
and bucket names and the credential set are defined here once. Two consumers render them:

* the Pulumi program (``infra/components``) turns them into Docker containers, and
* the embedded stack (``infra/local``) turns them into supervised local processes.

Tests (``tests/unit/infra/test_pulumi_catalog_drift.py``, ``tests/unit/local/test_local_catalog_drift.py``)
fail if either consumer stops using these definitions.
Everything here is plain data and pure functions of plain strings, so Pulumi can call the builders inside
``Output.apply`` and the local stack can call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from infra.credentials import Credentials
from ml.settings import MLSettings
from ml.spec import SpecError, get_spec

# ---------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------
POSTGRES = "postgres"
S3 = "s3"
MLFLOW = "mlflow"
AIRFLOW_API = "airflow-apiserver"
AIRFLOW_SCHEDULER = "airflow-scheduler"
AIRFLOW_DAG_PROCESSOR = "airflow-dag-processor"
AIRFLOW_TRIGGERER = "airflow-triggerer"
API = "api"
LOCALSTACK = "localstack"

POSTGRES_USER = "mlops"  # the cluster's superuser: the operator's, never a service's
DATABASES = ("airflow", "mlflow", "mlflow_auth", "optuna")
#: Each database belongs to one role, the only one that may connect to it (``mlflow_auth``: MLflow's users).
DATABASE_ROLES: dict[str, str] = {"airflow": "airflow", "mlflow": "mlflow", "mlflow_auth": "mlflow", "optuna": "optuna"}
#: Postgres server settings of both stacks: a session left idle inside a transaction (a crashed client's
#: orphaned worker, a stuck connection) is ended after a minute, releasing its locks.
POSTGRES_SERVER_SETTINGS = {"idle_in_transaction_session_timeout": "60s"}
#: Per-database settings (``ALTER DATABASE ... SET``): statement timeouts where every query is short. Not
#: for Airflow's database, whose migrations may legitimately run longer.
DATABASE_SETTINGS: dict[str, dict[str, str]] = {
    "mlflow": {"statement_timeout": "30s"},
    "optuna": {"statement_timeout": "30s"},
}
LAKE_BUCKET = "lake"
MLFLOW_BUCKET = "mlflow"
SERVING_BUCKET = "serving"
BUCKETS = (LAKE_BUCKET, MLFLOW_BUCKET, SERVING_BUCKET)
MLFLOW_ARTIFACTS_DESTINATION = f"s3://{MLFLOW_BUCKET}/artifacts"
#: The prediction API's shared champion cache (see api/champion_cache.py): the last champion's files and a
#: pointer, published by the API process/container and read by every API instance and the Lambda when MLflow
#: cannot be reached. In a bucket of its own, so that the API may write there and only read MLflow's.
CHAMPION_CACHE_URI = f"s3://{SERVING_BUCKET}/champion-cache"
AIRFLOW_ADMIN_USER = "admin"
MLFLOW_ADMIN_USER = "admin"  # the operator's; the services have users of their own (MLFLOW_USERS)
#: MLflow users by who uses them (basic-auth app): the training pipeline writes runs, models and aliases,
#: the API and the Lambda only read. Every other user sees nothing without logging in.
MLFLOW_USERS: dict[str, str] = {"pipeline": "mlflow_pipeline_password", "api": "mlflow_api_password"}
#: S3 identities (one key pair each) by who uses them; what each may do is in infra/access.py.
S3_IDENTITIES = ("admin", "mlflow", "pipeline", "api", "lambda")
REGION = "us-east-1"


# ---------------------------------------------------------------------------------------------------------
# Ports and addressing
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ports:
    """Listening port of every service; the familiar defaults of the course's reference stack."""

    postgres: int = 5432
    s3: int = 9000
    mlflow: int = 5001
    airflow: int = 8080
    api: int = 8800
    localstack: int = 4566

    def as_dict(self) -> dict[str, int]:
        """Port by port name."""
        return asdict(self)


DEFAULT_PORTS = Ports()


@dataclass(frozen=True)
class Topology:
    """How services reach each other.

    Locally every service is ``127.0.0.1:<port>``; on the Docker network each is ``<service>:<default port>``
    and servers listen on all interfaces of their container.
    """

    ports: Ports = DEFAULT_PORTS
    bind_host: str = "127.0.0.1"
    hosts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def local(cls, ports: Ports = DEFAULT_PORTS) -> Topology:
        """All services on loopback, each on its configured port."""
        return cls(ports=ports, bind_host="127.0.0.1")

    @classmethod
    def docker(cls, container_names: Mapping[str, str] | None = None) -> Topology:
        """Services on a Docker network, addressed by container name on their default ports."""
        names = {svc: svc for svc in SERVICES} | dict(container_names or {})
        return cls(ports=DEFAULT_PORTS, bind_host="0.0.0.0", hosts=names)

    def host(self, service: str) -> str:
        """Host name under which ``service`` is reachable from the other services."""
        return self.hosts.get(service, "127.0.0.1")

    def port(self, service: str) -> int:
        """Port on which ``service`` listens."""
        port_name = SERVICES[service].port
        if port_name is None:
            raise ValueError(f"service {service!r} does not listen on a port")
        return getattr(self.ports, port_name)

    def url(self, service: str, path: str = "") -> str:
        """``http://host:port`` of a service, plus an optional path."""
        return f"http://{self.host(service)}:{self.port(service)}{path}"


# ---------------------------------------------------------------------------------------------------------
# Services: names, ports, dependencies and health checks
# ---------------------------------------------------------------------------------------------------------
HealthKind = Literal["sql", "s3", "http", "airflow-component"]


@dataclass(frozen=True)
class HealthCheck:
    """What "healthy" means for a service.

    ``sql``: ``SELECT 1`` on the database; ``s3``: ListBuckets with the stack's keys; ``http``: GET ``path``
    answers 2xx; ``airflow-component``: Airflow's ``/api/v2/monitor/health`` reports ``component`` healthy.
    """

    kind: HealthKind
    path: str = ""
    component: str = ""
    interval_s: float = 5.0
    timeout_s: float = 3.0
    start_period_s: float = 10.0
    retries: int = 24

    def describe(self) -> str:
        """One-line description for error messages and docs."""
        return {
            "sql": "SQL query SELECT 1",
            "s3": "S3 ListBuckets with the stack's keys",
            "http": f"HTTP GET {self.path} answers 2xx",
            "airflow-component": f"Airflow /api/v2/monitor/health reports {self.component} healthy",
        }[self.kind]


@dataclass(frozen=True)
class Service:
    """One service of the platform.

    ``stop_grace_s``: how long a stop waits after SIGTERM before SIGKILL (a clean shutdown: Postgres'
    checkpoint, LocalStack removing its Lambda containers, Airflow finishing its heartbeat).
    """

    name: str
    summary: str
    port: str | None
    depends_on: tuple[str, ...]
    health: HealthCheck
    stop_grace_s: int = 15

    def __post_init__(self) -> None:
        if self.port is not None and self.port not in Ports.__dataclass_fields__:
            raise ValueError(f"service {self.name}: unknown port name {self.port!r}")


AIRFLOW_HEALTH_PATH = "/api/v2/monitor/health"

SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            POSTGRES,
            "PostgreSQL: metadata of Airflow, MLflow and the Optuna studies",
            "postgres",
            (),
            HealthCheck("sql"),
            stop_grace_s=30,
        ),
        Service(
            S3,
            "S3 data lake and MLflow artifact store (MinIO in Docker, SeaweedFS locally)",
            "s3",
            (),
            HealthCheck("s3"),
        ),
        Service(
            MLFLOW,
            "MLflow tracking server and model registry",
            "mlflow",
            (POSTGRES, S3),
            HealthCheck("http", path="/health"),
        ),
        Service(
            AIRFLOW_API,
            "Airflow 3 API server and UI",
            "airflow",
            (POSTGRES,),
            HealthCheck("http", path=AIRFLOW_HEALTH_PATH, start_period_s=30),
        ),
        Service(
            AIRFLOW_SCHEDULER,
            "Airflow scheduler (LocalExecutor)",
            None,
            (AIRFLOW_API, MLFLOW, S3),
            HealthCheck("airflow-component", component="scheduler", start_period_s=30),
            stop_grace_s=30,
        ),
        Service(
            AIRFLOW_DAG_PROCESSOR,
            "Airflow DAG processor",
            None,
            (AIRFLOW_API,),
            HealthCheck("airflow-component", component="dag_processor", start_period_s=30),
        ),
        Service(
            AIRFLOW_TRIGGERER,
            "Airflow triggerer",
            None,
            (AIRFLOW_API,),
            HealthCheck("airflow-component", component="triggerer", start_period_s=30),
        ),
        Service(
            API,
            "Prediction API (FastAPI) serving the champion model",
            "api",
            (MLFLOW, S3),
            HealthCheck("http", path="/health"),
        ),
        Service(
            LOCALSTACK,
            "LocalStack: emulated AWS with the API deployed as a Lambda",
            "localstack",
            (S3,),
            HealthCheck("http", path="/_localstack/health"),
            stop_grace_s=30,
        ),
    )
}


def start_order(names: list[str] | None = None) -> list[str]:
    """Services in dependency order (a topological sort of ``depends_on``), restricted to ``names``."""
    wanted = set(names or SERVICES)
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        if name in order:
            return
        for dep in SERVICES[name].depends_on:
            if dep in wanted:
                visit(dep, (*path, name))
        order.append(name)

    for name in SERVICES:
        if name in wanted:
            visit(name, ())
    return order


# ---------------------------------------------------------------------------------------------------------
# Connection strings and environments
# ---------------------------------------------------------------------------------------------------------
def postgres_url(topo: Topology, creds: Credentials, database: str, driver: str = "postgresql+psycopg2") -> str:
    """SQLAlchemy URL of one of the platform's databases, as the role that owns it (:data:`DATABASE_ROLES`)."""
    if database not in DATABASES:
        raise ValueError(f"unknown database {database!r}; the platform has {DATABASES}")
    role = DATABASE_ROLES[database]
    password = getattr(creds, f"postgres_{role}_password")
    return f"{driver}://{role}:{password}@{topo.host(POSTGRES)}:{topo.port(POSTGRES)}/{database}"


def postgres_admin_url(topo: Topology, creds: Credentials, database: str = "postgres") -> str:
    """URL of the cluster's superuser (the operator's: creating roles and databases, maintenance)."""
    return (
        f"postgresql+psycopg2://{POSTGRES_USER}:{creds.postgres_password}@{topo.host(POSTGRES)}:"
        f"{topo.port(POSTGRES)}/{database}"
    )


def database_settings_sql(database: str) -> list[str]:
    """``ALTER DATABASE`` statements applying :data:`DATABASE_SETTINGS` to one database (idempotent)."""
    settings = DATABASE_SETTINGS.get(database, {})
    return [f"ALTER DATABASE {database} SET {key} = '{value}';" for key, value in settings.items()]


def s3_endpoint(topo: Topology) -> str:
    """S3 API endpoint URL."""
    return topo.url(S3)


def s3_keys(creds: Credentials, identity: str) -> tuple[str, str]:
    """Access key id and secret of an S3 identity (:data:`S3_IDENTITIES`; ``admin`` is the root)."""
    if identity not in S3_IDENTITIES:
        raise ValueError(f"unknown S3 identity {identity!r}; the platform has {S3_IDENTITIES}")
    prefix = "s3" if identity == "admin" else f"s3_{identity}"
    return getattr(creds, f"{prefix}_access_key"), getattr(creds, f"{prefix}_secret_key")


def s3_client_env(topo: Topology, creds: Credentials, identity: str = "admin") -> dict[str, str]:
    """Environment every S3 client needs (boto3 and MLflow both read these names), as ``identity``."""
    endpoint = s3_endpoint(topo)
    key, secret = s3_keys(creds, identity)
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
    }


def mlflow_client_env(creds: Credentials, user: str) -> dict[str, str]:
    """The MLflow login of a client (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``): ``pipeline`` or ``api``."""
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": getattr(creds, MLFLOW_USERS[user])}


#: MLflow's basic-auth settings other than secrets (the file also holds ``database_uri``, written with the
#: ``mlflow`` role's password by the local stack or, in Docker, by the image's entrypoint).
MLFLOW_AUTH_SETTINGS = {
    "default_permission": "READ",  # every logged-in user reads; writes need a permission (the creator's)
    "admin_username": MLFLOW_ADMIN_USER,
    "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    # Each password check is a scrypt hash (~75 ms of CPU here): without the cache every request of the
    # pipeline, the API's alias checks and the Lambda's pays it, and MLflow saturates a core under load. One
    # worker, so a password changed through the API takes effect at once; only out-of-band changes wait.
    "auth_cache_ttl_seconds": "60",
}


def mlflow_auth_ini(database_uri: str) -> str:
    """Content of MLflow's basic-auth config file (``MLFLOW_AUTH_CONFIG_PATH``; it holds a secret: 0600)."""
    lines = ["[mlflow]", *(f"{k} = {v}" for k, v in MLFLOW_AUTH_SETTINGS.items()), f"database_uri = {database_uri}"]
    return "\n".join(lines) + "\n"


def mlflow_server_env(
    topo: Topology, creds: Credentials, auth_config_path: str, allowed_hosts: tuple[str, ...] = ()
) -> dict[str, str]:
    """Environment of ``mlflow server``: Postgres backend, artifacts proxied to S3, one worker, no job runner.

    With the basic-auth app: login required, the admin password from the environment, not the file.
    Everything, including the secret backend URI, goes through environment variables so that no secret
    appears on a command line (``ps``) or in a container's command.
    """
    hosts = ["localhost", "127.0.0.1", f"{topo.host(MLFLOW)}", *allowed_hosts]
    hosts_with_ports = sorted({h for host in hosts for h in (host, f"{host}:{topo.port(MLFLOW)}")})
    return {
        **s3_client_env(topo, creds, "mlflow"),
        "MLFLOW_BACKEND_STORE_URI": postgres_url(topo, creds, "mlflow"),
        "MLFLOW_ARTIFACTS_DESTINATION": MLFLOW_ARTIFACTS_DESTINATION,
        "MLFLOW_SERVE_ARTIFACTS": "true",
        "MLFLOW_HOST": topo.bind_host,
        "MLFLOW_PORT": str(topo.port(MLFLOW)),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_SERVER_ALLOWED_HOSTS": ",".join(hosts_with_ports),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": auth_config_path,
        "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.mlflow_admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": creds.mlflow_flask_secret_key,  # the auth app's CSRF protection
    }


def ml_env(topo: Topology, creds: Credentials, settings: MLSettings | None = None) -> dict[str, str]:
    """Environment of everything that runs the ML library (Airflow tasks, benchmarks, tests)."""
    settings = (settings or MLSettings()).model_copy(
        update={
            "tracking_uri": topo.url(MLFLOW),
            "optuna_storage": postgres_url(topo, creds, "optuna"),
            "lake_bucket": LAKE_BUCKET,
        }
    )
    return {**s3_client_env(topo, creds, "pipeline"), **mlflow_client_env(creds, "pipeline"), **settings.to_env()}


#: The ML library's setting of the directory with the users' data files (relative CSV paths of specs).
DATA_DIR_ENV = "MLOPS_DATA_DIR"


def active_datasets(settings: MLSettings) -> list[str]:
    """The stack's active datasets (``MLOPS_DATASETS``), checked: each names a spec, the default is one of them.

    Raises :class:`~ml.spec.SpecError` saying what to change; both stacks call this before they start.
    """
    names = settings.active_datasets()
    if settings.dataset not in names:
        raise SpecError(
            f"the default dataset MLOPS_DATASET={settings.dataset!r} is not active (MLOPS_DATASETS="
            f"{settings.datasets!r} -> {', '.join(names)}): the API's unnamed routes would serve no model; "
            "add it to MLOPS_DATASETS or set MLOPS_DATASET to one of the active datasets"
        )
    return names


@dataclass(frozen=True)
class AirflowPaths:
    """Where Airflow keeps its files: home, DAG folder and users' data files (differs between Docker and local).

    ``data``: the directory the tasks read data files from (``MLOPS_DATA_DIR``); ``None`` leaves it to the
    ML settings' own default (locally: the repository's ``data/``).
    """

    home: str
    dags: str
    passwords_file: str
    data: str | None = None


def airflow_env(
    topo: Topology, creds: Credentials, paths: AirflowPaths, settings: MLSettings | None = None, parallelism: int = 4
) -> dict[str, str]:
    """Environment shared by all Airflow components (and inherited by the tasks they run).

    The DAG processor re-runs every DAG file each ``MIN_FILE_PROCESS_INTERVAL`` seconds, changed or not: the
    DAG files generate one DAG pair per dataset spec, so a spec added to ``ml/datasets/`` appears that soon.
    """
    data_dir = {DATA_DIR_ENV: paths.data} if paths.data else {}
    return {
        **ml_env(topo, creds, settings),
        **data_dir,
        "AIRFLOW_HOME": paths.home,
        "AIRFLOW__CORE__DAGS_FOLDER": paths.dags,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__FERNET_KEY": creds.airflow_fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": topo.url(AIRFLOW_API, "/execution/"),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": paths.passwords_file,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url(topo, creds, "airflow"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # A task whose process died (e.g. with its worker) is failed and retried after 1 minute, not 5.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "10",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "60",
        "AIRFLOW__API__HOST": topo.bind_host,
        "AIRFLOW__API__PORT": str(topo.port(AIRFLOW_API)),
        "AIRFLOW__API__BASE_URL": topo.url(AIRFLOW_API),
        "AIRFLOW__API__SECRET_KEY": creds.airflow_api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": creds.airflow_jwt_secret,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


def airflow_passwords_json(creds: Credentials) -> str:
    """Content of the SimpleAuthManager passwords file (derived from the credentials, mode 0600)."""
    return '{"%s": "%s"}' % (AIRFLOW_ADMIN_USER, creds.airflow_admin_password)  # noqa: UP031


#: glibc's allocator for the API: transparent huge pages for its large buffers (a request body of several MB is
#: its own mapping, see api/memory.py: 512x fewer page faults; halves the CPU of a 10 MB body on a VM).
API_ALLOCATOR_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def api_env(topo: Topology, creds: Credentials, settings: MLSettings | None = None) -> dict[str, str]:
    """Environment of the prediction API (process, container or Lambda).

    It serves every registered champion; ``MLOPS_API_DEFAULT_MODEL`` (the default dataset) is the one its
    unnamed routes (``/predict``, ``/model``) serve, ``MLOPS_MODEL_NAME`` that model's registered name (kept
    for clients and images of the single-model API).
    """
    settings = settings or MLSettings()
    return {
        **API_ALLOCATOR_ENV,
        # gunicorn titles its processes (setproctitle), which by default overwrites /proc/<pid>/environ:
        # keep the environment inspectable (ops, the secrets-isolation test) and the title short instead.
        "SPT_NOENV": "1",
        **s3_client_env(topo, creds, "api"),
        **mlflow_client_env(creds, "api"),
        "MLFLOW_TRACKING_URI": topo.url(MLFLOW),
        "MLOPS_API_DEFAULT_MODEL": settings.dataset,
        "MLOPS_MODEL_NAME": get_spec(settings.dataset).registered_model,
        "MLOPS_API_ADMIN_KEY": creds.api_admin_key,
        "MLOPS_API_CACHE_S3_URI": CHAMPION_CACHE_URI,
    }


# ---------------------------------------------------------------------------------------------------------
# Commands (the same CLI in a container and as a local process)
# ---------------------------------------------------------------------------------------------------------
AIRFLOW_MIGRATE_COMMAND = ["airflow", "db", "migrate"]


def commands(topo: Topology) -> dict[str, list[str]]:
    """Command line of every service whose program is the same in Docker and locally.

    Postgres and S3 are absent: their programs differ (official images in Docker, embedded binaries
    locally) while their ports, credentials and health checks above are shared.
    """
    return {
        MLFLOW: ["mlflow", "server", "--app-name", "basic-auth"],  # the rest: mlflow_server_env()
        AIRFLOW_API: ["airflow", "api-server", "--port", str(topo.port(AIRFLOW_API))],
        AIRFLOW_SCHEDULER: ["airflow", "scheduler"],
        AIRFLOW_DAG_PROCESSOR: ["airflow", "dag-processor"],
        AIRFLOW_TRIGGERER: ["airflow", "triggerer"],
        # gunicorn master + one warm uvicorn worker (api/server.py): a killed worker is replaced in ~0.1 s
        API: [
            "gunicorn",
            "api.main:app",
            "--config",
            "python:api.server",
            "--bind",
            f"{topo.bind_host}:{topo.port(API)}",
        ],
    }
