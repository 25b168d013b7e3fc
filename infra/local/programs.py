"""The catalog's services rendered as local processes (supervisor programs).

One builder per catalog service turns the catalog's command, environment and port into a :class:`Program`.
The table :data:`BUILDERS` holds every builder; :func:`register_builder` replaces one (tests, other
implementations). LocalStack's builder lives in :mod:`infra.aws_lambda.local_service` and is imported only
when LocalStack is enabled (``MLOPS_STACK_ENABLE_LOCALSTACK``: ``auto`` by default, i.e. when Python 3.13
and 3.12 are installed).

Local deviations from the catalog are listed explicitly in :data:`LOCAL_EXTRA_ARGS`,
:data:`LOCAL_ENV_OVERRIDES` and :func:`api_local_env` (each with its reason).
"""

from __future__ import annotations

import pwd
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra import catalog
from infra.local import postgres
from infra.local.layout import StatePaths
from infra.local.service_hooks import ServiceHooks, hooks_for
from infra.local.settings import REPO_ROOT, StackSettings

#: The virtualenv's bin directory: mlflow, airflow, uvicorn, weed, supervisord live here.
VENV_BIN = Path(sys.executable).parent

#: The one-shot job that prepares Airflow's metadata DB before any Airflow component starts.
AIRFLOW_MIGRATE = "airflow-db-migrate"

#: Arguments appended to the catalog's commands when running locally.
LOCAL_EXTRA_ARGS: dict[str, list[str]] = {
    # serve-logs binds 0.0.0.0:8793/8794 (not configurable) and is useless here: the API server reads the
    # task logs straight from $AIRFLOW_HOME/logs on the same machine.
    catalog.AIRFLOW_SCHEDULER: ["--skip-serve-logs"],
    catalog.AIRFLOW_TRIGGERER: ["--skip-serve-logs"],
}

#: Environment values that differ from the catalog's when running locally.
LOCAL_ENV_OVERRIDES: dict[str, dict[str, str]] = {
    # The scheduler's health server would bind 0.0.0.0:8974 (a fixed port shared by every stack on the
    # machine); we read the scheduler's health from the API server's /api/v2/monitor/health instead.
    "airflow": {"AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False"},
}


@dataclass(frozen=True)
class Program:
    """One supervised process.

    ``env`` may hold secrets: the supervisor renderer moves those out of the config file into supervisord's
    own environment.
    """

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    directory: Path | None = None
    user: str | None = None
    oneshot: bool = False  # runs to completion (exit 0) instead of staying up
    stopsignal: str = "TERM"
    #: Signal the whole process group on stop. Off by default: Airflow and Postgres orchestrate their own
    #: children on SIGTERM/SIGINT, and a signal sent to those children directly disturbs that (the triggerer
    #: then waits 10 s). Whatever outlives ``stopwaitsecs`` is SIGKILLed as a group in any case.
    stopasgroup: bool = False
    stopwaitsecs: int = 20
    startsecs: int = 2
    #: supervisor retries a program that exits with a back-off growing by a second per attempt; a service
    #: is retried for as long as it takes (``status`` reports it unhealthy meanwhile, ``up`` gives up on a
    #: service that keeps crashing while it starts), a one-shot job a few times only.
    startretries: int = 100_000

    @property
    def log_name(self) -> str:
        """Name of the program's log file (without ``.log``)."""
        return self.name


@dataclass(frozen=True)
class LocalService:
    """A catalog service as run here: its long-running program and the one-shot jobs it needs first."""

    name: str
    program: Program
    jobs_before: tuple[Program, ...] = ()
    hooks: ServiceHooks | None = None  # how it is checked, what runs once ready; default: hooks_for(name)

    def __post_init__(self) -> None:
        if self.hooks is None:
            object.__setattr__(self, "hooks", hooks_for(self.name))


@dataclass(frozen=True)
class BuildContext:
    """What the builders need: settings, paths, credentials and the catalog topology."""

    settings: StackSettings
    paths: StatePaths
    creds: catalog.Credentials
    topo: catalog.Topology
    pg_binaries: postgres.PgBinaries | None = None
    pg_user: pwd.struct_passwd | None = None


Builder = Callable[[BuildContext], LocalService]


def exe(name: str) -> str:
    """Absolute path of a program: from the virtualenv, else from PATH."""
    candidate = VENV_BIN / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"program {name!r} not found in {VENV_BIN} nor on PATH")
    return found


#: Wrapper that removes leftovers of a killed previous instance, then execs the command (see launch.py).
LAUNCHER = Path(__file__).with_name("launch.py")


def launched(cmd: list[str], user: str | None = None) -> list[str]:
    """``cmd`` started through :data:`LAUNCHER`, which first ends what a previous instance left behind.

    Every program goes through it. ``user``: run ``cmd`` as that OS user (the launcher keeps its own rights
    for the clean-up, e.g. to end a killed postmaster's leftover backends).
    """
    return [sys.executable, "-I", str(LAUNCHER), *(["--user", user] if user else []), *cmd]


def _catalog_command(ctx: BuildContext, service: str) -> list[str]:
    cmd = list(catalog.commands(ctx.topo)[service])
    return launched([exe(cmd[0]), *cmd[1:], *LOCAL_EXTRA_ARGS.get(service, [])])


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------
def build_postgres(ctx: BuildContext) -> LocalService:
    """Postgres in the foreground, as the Postgres OS user."""
    if ctx.pg_binaries is None:
        raise RuntimeError("Postgres binaries not resolved")
    cmd = postgres.server_command(
        ctx.pg_binaries, ctx.paths.postgres_data, ctx.topo.port(catalog.POSTGRES), ctx.topo.bind_host
    )
    program = Program(
        catalog.POSTGRES,
        launched(cmd, user=ctx.pg_user.pw_name if ctx.pg_user else None),
        env={"LANG": "C", "LC_ALL": "C"},
        directory=ctx.paths.postgres,
        stopsignal="INT",  # "fast" shutdown: disconnect clients, checkpoint, exit
        stopwaitsecs=30,
        startsecs=1,
    )
    return LocalService(catalog.POSTGRES, program)


def seaweed_command(ctx: BuildContext) -> list[str]:
    """``weed mini`` with every port explicit, on 127.0.0.1, logs to stderr, S3 identities from a file."""
    s, p = ctx.settings, ctx.paths
    ports = s.seaweed_ports()
    args = [
        exe("weed"),
        "-logtostderr",
        f"-config_dir={p.s3_config_dir}",
        "mini",
        f"-dir={p.s3_data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.config={p.s3_identities}",
        f"-filer.localSocket={p.s3 / 'filer.sock'}",
        f"-s3.localSocket={p.s3 / 's3.sock'}",
        f"-bucket={','.join(catalog.BUCKETS)}",
    ]
    for server, (http, grpc) in ports.items():
        args += [f"-{server}.port={http}", f"-{server}.port.grpc={grpc}"]
    return args


def build_s3(ctx: BuildContext) -> LocalService:
    """``weed mini`` (default) or ``minio server`` (``s3_backend='minio'``)."""
    if ctx.settings.s3_backend == "minio":
        cmd = [
            exe("minio"),
            "server",
            str(ctx.paths.s3_data),
            "--address",
            f"{ctx.topo.bind_host}:{ctx.topo.port(catalog.S3)}",
            "--console-address",
            f"{ctx.topo.bind_host}:{ctx.settings.minio_console_port}",
        ]
        env = {
            "MINIO_ROOT_USER": ctx.creds.s3_access_key,
            "MINIO_ROOT_PASSWORD": ctx.creds.s3_secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        program = Program(catalog.S3, launched(cmd), env=env, directory=ctx.paths.s3, stopwaitsecs=15)
        return LocalService(catalog.S3, program)
    # SeaweedFS would add an admin identity (and log its access key) from AWS_* in its environment, which
    # it inherits from supervisord: blank them; the identities file is the only source of keys.
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "TMPDIR": str(ctx.paths.s3)}
    # stopwaitsecs: weed 4.48 waits 10 s for its admin server on SIGTERM (upstream hang), then stops
    # filer, volume and master cleanly in ~3 s: give it time rather than SIGKILL it mid-way.
    program = Program(catalog.S3, launched(seaweed_command(ctx)), env=env, directory=ctx.paths.s3, stopwaitsecs=25)
    return LocalService(catalog.S3, program)


def build_mlflow(ctx: BuildContext) -> LocalService:
    """``mlflow server`` (basic-auth app) configured by the catalog's environment and its auth file."""
    env = catalog.mlflow_server_env(ctx.topo, ctx.creds, auth_config_path=str(ctx.paths.mlflow_auth_config))
    # `mlflow server` runs uvicorn as a child and does not forward SIGTERM to it: signal the group.
    program = Program(
        catalog.MLFLOW,
        _catalog_command(ctx, catalog.MLFLOW),
        env=env,
        directory=ctx.paths.mlflow,
        startsecs=3,
        stopasgroup=True,
    )
    return LocalService(catalog.MLFLOW, program)


def airflow_env(ctx: BuildContext) -> dict[str, str]:
    """The catalog's Airflow environment for this stack, plus the local overrides."""
    paths = ctx.paths.airflow_paths(ctx.settings.dags_folder)
    env = catalog.airflow_env(ctx.topo, ctx.creds, paths, parallelism=ctx.settings.airflow_parallelism)
    return env | LOCAL_ENV_OVERRIDES["airflow"]


def _airflow_program(ctx: BuildContext, service: str) -> Program:
    return Program(
        service,
        _catalog_command(ctx, service),
        env=airflow_env(ctx),
        directory=ctx.paths.airflow_home,
        stopwaitsecs=30,
        startsecs=5,
    )


def build_airflow_api(ctx: BuildContext) -> LocalService:
    """The Airflow API server, preceded by the one-shot ``airflow db migrate``."""
    migrate = Program(
        AIRFLOW_MIGRATE,
        launched([exe(catalog.AIRFLOW_MIGRATE_COMMAND[0]), *catalog.AIRFLOW_MIGRATE_COMMAND[1:]]),
        env=airflow_env(ctx),
        directory=ctx.paths.airflow_home,
        oneshot=True,
        stopwaitsecs=30,
    )
    return LocalService(catalog.AIRFLOW_API, _airflow_program(ctx, catalog.AIRFLOW_API), jobs_before=(migrate,))


def _build_airflow_component(service: str) -> Builder:
    def build(ctx: BuildContext) -> LocalService:
        return LocalService(service, _airflow_program(ctx, service))

    return build


def api_local_env(paths: StatePaths) -> dict[str, str]:
    """The API's local deviation from the catalog: its champion cache lives in the stack's state directory.

    A restart (even after SIGKILL) serves the last champion from there within about a second, without
    waiting on MLflow; ``destroy`` removes it with the rest of the state (the default, <TMPDIR>, would outlive it).
    """
    return {"MLOPS_API_CACHE_DIR": str(paths.api / "champion-cache")}


def build_api(ctx: BuildContext) -> LocalService:
    """The prediction API (uvicorn), run from the repository root."""
    env = catalog.api_env(ctx.topo, ctx.creds) | api_local_env(ctx.paths)
    program = Program(catalog.API, _catalog_command(ctx, catalog.API), env=env, directory=REPO_ROOT, startsecs=2)
    return LocalService(catalog.API, program)


def build_localstack(ctx: BuildContext) -> LocalService:
    """LocalStack in host mode with the local-process Lambda executor (see :mod:`infra.aws_lambda.local_service`)."""
    from infra.aws_lambda import local_service

    return local_service.build(ctx)


BUILDERS: dict[str, Builder] = {
    catalog.POSTGRES: build_postgres,
    catalog.S3: build_s3,
    catalog.MLFLOW: build_mlflow,
    catalog.AIRFLOW_API: build_airflow_api,
    catalog.AIRFLOW_SCHEDULER: _build_airflow_component(catalog.AIRFLOW_SCHEDULER),
    catalog.AIRFLOW_DAG_PROCESSOR: _build_airflow_component(catalog.AIRFLOW_DAG_PROCESSOR),
    catalog.AIRFLOW_TRIGGERER: _build_airflow_component(catalog.AIRFLOW_TRIGGERER),
    catalog.API: build_api,
    catalog.LOCALSTACK: build_localstack,
}


def register_builder(service: str, builder: Builder) -> None:
    """Plug in (or replace) the local process of a catalog service."""
    if service not in catalog.SERVICES:
        raise ValueError(f"{service!r} is not a catalog service")
    BUILDERS[service] = builder


def build_services(ctx: BuildContext, names: list[str]) -> dict[str, LocalService]:
    """The local form of each named service, in the given order."""
    missing = [n for n in names if n not in BUILDERS]
    if missing:
        raise NotImplementedError(
            f"no local process for service(s) {missing} yet: register one with "
            "infra.local.programs.register_builder() or disable it (e.g. MLOPS_STACK_ENABLE_LOCALSTACK=0)"
        )
    return {n: BUILDERS[n](ctx) for n in names}


def all_programs(services: dict[str, LocalService]) -> list[Program]:
    """Every supervised program: the one-shot jobs of a service come right before it."""
    return [p for s in services.values() for p in (*s.jobs_before, s.program)]
