"""Where the embedded stack keeps its files: everything under one state directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from infra import catalog

#: A file that marks a directory as a stack state directory (``destroy`` refuses to delete anything else).
MARKER = ".mlops-stack"
#: Unix socket paths are limited to 108 bytes on Linux (including the terminating NUL).
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class StatePaths:
    """Every path of one stack, derived from its state directory."""

    root: Path

    @property
    def marker(self) -> Path:
        """File marking the directory as a stack state directory."""
        return self.root / MARKER

    @property
    def credentials(self) -> Path:
        """The one file holding every secret (mode 0600)."""
        return self.root / "credentials.json"

    @property
    def logs(self) -> Path:
        """One log file per supervised program, plus supervisord's."""
        return self.root / "logs"

    def log(self, program: str) -> Path:
        """Log file of one supervised program (stdout and stderr)."""
        return self.logs / f"{program}.log"

    @property
    def supervisord_conf(self) -> Path:
        """The rendered supervisord config (no secrets)."""
        return self.root / "supervisord.conf"

    @property
    def supervisord_log(self) -> Path:
        """Log of supervisord itself."""
        return self.logs / "supervisord.log"

    @property
    def supervisord_pid(self) -> Path:
        """Pidfile of supervisord."""
        return self.root / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        """Unix socket of supervisord's XML-RPC API (mode 0700)."""
        return self.root / "supervisor.sock"

    @property
    def postgres(self) -> Path:
        """Owned by the OS user that runs Postgres."""
        return self.root / "postgres"

    @property
    def postgres_data(self) -> Path:
        """The Postgres cluster (PGDATA)."""
        return self.postgres / "data"

    @property
    def s3(self) -> Path:
        """SeaweedFS' (or MinIO's) working directory."""
        return self.root / "s3"

    @property
    def s3_data(self) -> Path:
        """S3 objects and metadata."""
        return self.s3 / "data"

    @property
    def s3_config_dir(self) -> Path:
        """SeaweedFS' TOML configuration directory (kept empty: no user or system config leaks in)."""
        return self.s3 / "config"

    @property
    def s3_identities(self) -> Path:
        """SeaweedFS' S3 identities (derived from the credentials, mode 0600, rewritten on every `up`)."""
        return self.s3 / "identities.json"

    @property
    def mlflow(self) -> Path:
        """Working directory of the MLflow server (nothing should land here: artifacts go to S3)."""
        return self.root / "mlflow"

    @property
    def mlflow_auth_config(self) -> Path:
        """MLflow's basic-auth config (``MLFLOW_AUTH_CONFIG_PATH``; 0600: its database URI holds a password)."""
        return self.mlflow / "basic_auth.ini"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME: task logs, the passwords file, a placeholder airflow.cfg."""
        return self.root / "airflow"

    def airflow_paths(self, dags_folder: Path) -> catalog.AirflowPaths:
        """The catalog's Airflow paths for this stack."""
        return catalog.AirflowPaths(
            home=str(self.airflow_home),
            dags=str(dags_folder),
            passwords_file=str(self.airflow_home / "simple_auth_manager_passwords.json"),
        )

    @property
    def localstack(self) -> Path:
        """LocalStack's working directory and state (see ``infra/aws_lambda/localstack_venvs.py``)."""
        return self.root / "localstack"

    @property
    def api(self) -> Path:
        """Working directory reserved for the prediction API."""
        return self.root / "api"

    @property
    def run(self) -> Path:
        """Run-time records of the supervised programs (the process group of each running instance)."""
        return self.root / "run"

    def secrets_file(self, program: str) -> Path:
        """A program's secret environment variables (0600, JSON), loaded by its launcher before it starts."""
        return self.run / f"{program}.secrets.json"

    def group_file(self, program: str) -> Path:
        """Where ``infra/local/launch.py`` records the process group of the running instance of ``program``."""
        return self.run / f"{program}.pgid"

    def create(self) -> None:
        """Create the directory tree (idempotent) and mark it as a stack state directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.marker.exists():
            self.marker.write_text("state directory of the embedded MLOps stack (infra/local)\n")
        for d in (
            self.logs,
            self.run,
            self.s3,
            self.s3_data,
            self.s3_config_dir,
            self.mlflow,
            self.airflow_home,
            self.api,
        ):
            d.mkdir(parents=True, exist_ok=True)
        self.postgres.mkdir(mode=0o700, exist_ok=True)
        if len(str(self.supervisor_socket)) > MAX_SOCKET_PATH:
            raise ValueError(
                f"state directory path too long for a unix socket ({self.supervisor_socket}): "
                "choose a shorter MLOPS_STACK_STATE_DIR"
            )

    def is_stack_dir(self) -> bool:
        """Whether ``root`` was created by a stack (so that ``destroy`` may delete it)."""
        return self.marker.is_file()


def write_private(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` with mode 0600 from the first byte on (atomic replace)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_credentials(path: Path) -> tuple[catalog.Credentials, bool]:
    """The stack's credentials: read from ``path``, or generated and written there (mode 0600) on first use.

    Returns the credentials and whether they were just created.
    """
    if path.exists():
        data = json.loads(path.read_text())
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        missing = [n for n in catalog.Credentials.names() if n not in data]
        if missing:  # a stack made before these credentials existed: they are new roles and users, generate them
            data |= {n: catalog.Credentials.generate_one(n) for n in missing}
            write_private(path, json.dumps({n: data[n] for n in catalog.Credentials.names()}, indent=2) + "\n")
        return catalog.Credentials(**{n: data[n] for n in catalog.Credentials.names()}), False
    creds = catalog.Credentials.generate()
    write_private(path, json.dumps({n: getattr(creds, n) for n in creds.names()}, indent=2) + "\n")
    return creds, True
