"""The local half of the catalog drift check: local processes are rendered from infra/catalog.py.

Commands, environments, ports, health checks and the start order come from the catalog; local deviations
are only those listed in ``LOCAL_EXTRA_ARGS``, ``LOCAL_ENV_OVERRIDES`` and ``api_local_env`` (the API's cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import catalog
from infra.local import programs
from infra.local.programs import AIRFLOW_MIGRATE, LAUNCHER, BuildContext, build_services

pytestmark = pytest.mark.unit


def strip_launcher(cmd: list[str]) -> list[str]:
    """The command without the leftover-reaping launcher, with the program name instead of its path."""
    if str(LAUNCHER) in cmd:
        cmd = cmd[cmd.index(str(LAUNCHER)) + 1 :]
    if cmd[:1] == ["--user"]:
        cmd = cmd[2:]
    return [Path(cmd[0]).name, *cmd[1:]]


@pytest.fixture
def services(ctx: BuildContext) -> dict[str, programs.LocalService]:
    return build_services(ctx, ctx.settings.enabled_services())


def test_every_catalog_service_has_a_local_builder() -> None:
    assert set(programs.BUILDERS) == set(catalog.SERVICES)


def test_commands_are_the_catalogs(ctx: BuildContext, services: dict[str, programs.LocalService]) -> None:
    expected = catalog.commands(ctx.topo)
    for name, cmd in expected.items():
        local = strip_launcher(services[name].program.command)
        extra = programs.LOCAL_EXTRA_ARGS.get(name, [])
        assert local == [*cmd, *extra], name
    migrate = services[catalog.AIRFLOW_API].jobs_before[0]
    assert migrate.name == AIRFLOW_MIGRATE and migrate.oneshot
    assert strip_launcher(migrate.command) == catalog.AIRFLOW_MIGRATE_COMMAND


def test_environments_are_the_catalogs(ctx: BuildContext, services: dict[str, programs.LocalService]) -> None:
    auth = str(ctx.paths.mlflow_auth_config)
    assert services[catalog.MLFLOW].program.env == catalog.mlflow_server_env(ctx.topo, ctx.creds, auth_config_path=auth)
    assert services[catalog.API].program.env == catalog.api_env(ctx.topo, ctx.creds) | programs.api_local_env(ctx.paths)
    airflow = (
        catalog.airflow_env(ctx.topo, ctx.creds, ctx.paths.airflow_paths(ctx.settings.dags_folder), parallelism=4)
        | programs.LOCAL_ENV_OVERRIDES["airflow"]
    )
    for name in (
        catalog.AIRFLOW_API,
        catalog.AIRFLOW_SCHEDULER,
        catalog.AIRFLOW_DAG_PROCESSOR,
        catalog.AIRFLOW_TRIGGERER,
    ):
        assert services[name].program.env == airflow, name
    assert services[catalog.AIRFLOW_API].jobs_before[0].env == airflow


def test_airflow_uses_the_configured_dag_folder_and_passwords_file(
    ctx: BuildContext, services: dict[str, programs.LocalService]
) -> None:
    env = services[catalog.AIRFLOW_SCHEDULER].program.env
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ctx.settings.dags_folder)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(str(ctx.paths.airflow_home))
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"


def test_postgres_and_s3_listen_on_the_configured_ports(
    ctx: BuildContext, services: dict[str, programs.LocalService]
) -> None:
    pg = services[catalog.POSTGRES].program
    assert f"port={ctx.settings.postgres_port}" in pg.command
    assert "listen_addresses=127.0.0.1" in pg.command
    assert pg.stopsignal == "INT"
    weed = services[catalog.S3].program.command
    assert f"-s3.port={ctx.settings.s3_port}" in weed
    for server, (http, grpc) in ctx.settings.seaweed_ports().items():
        assert f"-{server}.port={http}" in weed and f"-{server}.port.grpc={grpc}" in weed
    assert "-ip.bind=127.0.0.1" in weed
    assert f"-bucket={','.join(catalog.BUCKETS)}" in weed
    assert all(str(ctx.paths.root) in a for a in weed if a.startswith(("-dir=", "-s3.config=", "-config_dir=")))


def test_minio_backend(ctx: BuildContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(programs, "exe", lambda name: f"/usr/bin/{name}")
    settings = ctx.settings.model_copy(update={"s3_backend": "minio"})
    local = programs.build_s3(BuildContext(settings, ctx.paths, ctx.creds, ctx.topo, ctx.pg_binaries))
    assert strip_launcher(local.program.command)[:2] == ["minio", "server"]
    assert f"127.0.0.1:{settings.s3_port}" in local.program.command
    assert local.program.env["MINIO_ROOT_PASSWORD"] == ctx.creds.s3_secret_key


def test_every_program_starts_through_the_launcher(services: dict[str, programs.LocalService]) -> None:
    """The launcher ends what a killed instance left behind (its process group and their descendants)."""
    for program in programs.all_programs(services):
        assert str(LAUNCHER) in program.command, program.name
        assert program.user is None, f"{program.name}: run as another user through the launcher's --user"


def test_missing_builder_names_the_hook(ctx: BuildContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(programs.BUILDERS, catalog.LOCALSTACK)
    with pytest.raises(NotImplementedError, match="register_builder"):
        build_services(ctx, [catalog.LOCALSTACK])


def test_register_builder(ctx: BuildContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(programs.BUILDERS, catalog.LOCALSTACK, programs.BUILDERS[catalog.API])  # restored after
    programs.register_builder(
        catalog.LOCALSTACK,
        lambda c: programs.LocalService(catalog.LOCALSTACK, programs.Program(catalog.LOCALSTACK, ["/ls"])),
    )
    assert build_services(ctx, [catalog.LOCALSTACK])[catalog.LOCALSTACK].program.command == ["/ls"]
    with pytest.raises(ValueError, match="not a catalog service"):
        programs.register_builder("nope", programs.BUILDERS[catalog.API])


def test_health_checks_cover_every_kind_used_by_the_catalog() -> None:
    from infra.local import health

    kinds = {s.health.kind for s in catalog.SERVICES.values()}
    assert kinds <= {"sql", "s3", "http", "airflow-component"}
    assert callable(health.check)
