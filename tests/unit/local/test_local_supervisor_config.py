"""supervisord config rendering: secrets stay out of the file, values survive supervisor's own parser."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from infra import catalog
from infra.local.layout import StatePaths
from infra.local.programs import BuildContext, Program, all_programs, build_services
from infra.local.supervisor import (
    PASSTHROUGH_ENV,
    STACK_MARKER_ENV,
    ConfigError,
    render_config,
    scoped_command,
    split_env,
    supervisord_env,
)

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Value-XYZ"


def parse(conf: str, tmp_path: Path) -> dict:
    """The program configs as supervisord itself reads them."""
    path = tmp_path / "supervisord.conf"
    path.write_text(conf)
    for d in ("logs", "state", "state/logs"):  # supervisor checks that its directories exist
        (tmp_path / d).mkdir(exist_ok=True)
    opts = ServerOptions()
    opts.configfile = str(path)
    section = opts.read_config(str(path))
    return {p.name: p for g in section.process_group_configs for p in g.process_configs}


def test_secret_values_go_to_supervisord_env_not_the_file(tmp_path: Path) -> None:
    progs = [
        Program("a", ["/bin/a", "--port", "1"], env={"DB_URL": f"postgresql://u:{SECRET}@h/db", "MODE": "x"}),
        Program("b", ["/bin/b"], env={"DB_URL": f"postgresql://u:{SECRET}@h/db", "OTHER": "y"}),
    ]
    conf, secret_env = render_config(progs, StatePaths(tmp_path), [SECRET])
    assert SECRET not in conf
    assert secret_env == {"DB_URL": f"postgresql://u:{SECRET}@h/db"}
    parsed = parse(conf, tmp_path)
    assert parsed["a"].environment == {"MODE": "x"}
    assert parsed["b"].environment == {"OTHER": "y"}


def test_secret_on_a_command_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="command line"):
        render_config([Program("a", ["/bin/a", f"--password={SECRET}"])], StatePaths(tmp_path), [SECRET])


def test_conflicting_secret_values_are_refused() -> None:
    progs = [Program("a", ["/a"], env={"K": SECRET + "1"}), Program("b", ["/b"], env={"K": SECRET + "2"})]
    with pytest.raises(ConfigError, match="differs"):
        split_env(progs, [SECRET])


def test_blanking_a_shared_secret_stays_in_the_program_config(tmp_path: Path) -> None:
    progs = [
        Program("a", ["/a"], env={"AWS_SECRET_ACCESS_KEY": SECRET}),
        Program("b", ["/b"], env={"AWS_SECRET_ACCESS_KEY": ""}),
    ]
    conf, secret_env = render_config(progs, StatePaths(tmp_path), [SECRET])
    assert secret_env == {"AWS_SECRET_ACCESS_KEY": SECRET}
    assert parse(conf, tmp_path)["b"].environment == {"AWS_SECRET_ACCESS_KEY": ""}


def test_awkward_values_round_trip(tmp_path: Path) -> None:
    env = {"PCT": "100%", "COMMA": "a,b=c", "QUOTE": 'say "hi" now', "SINGLE": "it's", "SPACE": "x y", "EMPTY": ""}
    cmd = ["/bin/prog", "-c", "log_line_prefix=%m [%p] ", "--name", "it's"]
    conf, _ = render_config([Program("p", cmd, env=env)], StatePaths(tmp_path), [SECRET])
    parsed = parse(conf, tmp_path)["p"]
    assert parsed.environment == env
    assert shlex.split(parsed.command) == cmd


@pytest.mark.parametrize(("value", "reason"), [("a\nb", "newline"), ('"q"', "quote"), ("x'", "quote")])
def test_values_supervisor_cannot_represent_are_refused(tmp_path: Path, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        render_config([Program("p", ["/p"], env={"X": value})], StatePaths(tmp_path), [SECRET])


def test_program_options(tmp_path: Path) -> None:
    progs = [
        Program("db", ["/db"], stopsignal="INT", stopwaitsecs=30, user=None),
        Program("job", ["/job"], oneshot=True),
        Program("srv", ["/srv"], startsecs=5, stopasgroup=True),
    ]
    paths = StatePaths(tmp_path)
    conf, _ = render_config(progs, paths, [])
    parsed = parse(conf, tmp_path)
    assert parsed["db"].stopsignal.name == "SIGINT"
    assert parsed["db"].stopwaitsecs == 30
    assert parsed["job"].autorestart is False and parsed["job"].startsecs == 0
    assert parsed["srv"].autorestart is not False and parsed["srv"].startsecs == 5
    for p in parsed.values():
        assert p.autostart is False
        assert p.killasgroup
        assert p.stopasgroup == (p.name == "srv")
        assert p.stdout_logfile == str(paths.log(p.name))
        assert p.redirect_stderr
    # priorities follow the given (start) order, so supervisord's own shutdown is in reverse order
    assert parsed["db"].priority < parsed["job"].priority < parsed["srv"].priority
    assert f"file={paths.supervisor_socket}" in conf and "chmod=0700" in conf


def test_supervisord_env_is_an_allow_list(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "HOME": "/root", "AWS_PROFILE": "prod", "MLOPS_STACK_MLFLOW_PORT": "1"}
    env = supervisord_env(StatePaths(tmp_path), {"SECRET_VAR": SECRET}, base)
    assert env["SECRET_VAR"] == SECRET
    assert env[STACK_MARKER_ENV] == str(tmp_path)
    assert env["PATH"].endswith("/usr/bin") and env["PATH"] != "/usr/bin"  # the venv comes first
    assert "AWS_PROFILE" not in env and "MLOPS_STACK_MLFLOW_PORT" not in env
    assert set(env) <= {*PASSTHROUGH_ENV, "PATH", STACK_MARKER_ENV, "SECRET_VAR"}


def test_the_real_stack_config_holds_no_credential(ctx: BuildContext, tmp_path: Path) -> None:
    services = build_services(ctx, ctx.settings.enabled_services())
    conf, secret_env = render_config(all_programs(services), ctx.paths, ctx.creds.values())
    for value in ctx.creds.values():
        assert value not in conf
    # the secrets the services need are all in supervisord's environment
    assert secret_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == catalog.postgres_url(ctx.topo, ctx.creds, "airflow")
    assert secret_env["AWS_SECRET_ACCESS_KEY"] == ctx.creds.s3_secret_key
    assert secret_env["MLOPS_API_ADMIN_KEY"] == ctx.creds.api_admin_key
    parse(conf, tmp_path)  # supervisord accepts it


def test_each_program_sheds_the_secrets_it_does_not_use(tmp_path: Path) -> None:
    """Shared secrets reach only the programs that set them: the others run under ``env -u``."""
    progs = [
        Program("db-user", ["/bin/a"], env={"DB_URL": f"postgresql://u:{SECRET}@h/db"}),
        Program("key-user", ["/bin/b", "x"], env={"API_KEY": SECRET + "k"}),
        Program("none", ["/bin/c"], env={"MODE": "1"}),
    ]
    conf, secret_env = render_config(progs, StatePaths(tmp_path), [SECRET, SECRET + "k"])
    assert set(secret_env) == {"DB_URL", "API_KEY"}
    commands = {name: shlex.split(p.command) for name, p in parse(conf, tmp_path).items()}
    assert commands["db-user"][-4:] == ["-u", "API_KEY", "--", "/bin/a"]
    assert commands["key-user"][-5:] == ["-u", "DB_URL", "--", "/bin/b", "x"]
    assert commands["none"][1:] == ["-u", "API_KEY", "-u", "DB_URL", "--", "/bin/c"]


def test_env_u_really_removes_the_variables(tmp_path: Path) -> None:
    """The rendered command, run as supervisord would (its environment holds every secret)."""
    import os
    import subprocess

    prog = Program("p", ["/bin/sh", "-c", "echo ${DB_URL:-unset} ${MODE:-unset}"], env={"MODE": "1"})
    command = scoped_command(prog, ["DB_URL"])
    out = subprocess.run(command, env=os.environ | {"DB_URL": SECRET, "MODE": "1"}, capture_output=True, text=True)
    assert out.stdout.split() == ["unset", "1"]


def test_the_real_stack_scopes_secrets_per_service(ctx: BuildContext, tmp_path: Path) -> None:
    services = build_services(ctx, ctx.settings.enabled_services())
    conf, secret_env = render_config(all_programs(services), ctx.paths, ctx.creds.values())
    parsed = parse(conf, tmp_path)
    unset = {name: set(shlex.split(p.command)[2::2]) & set(secret_env) for name, p in parsed.items()}
    assert (
        "MLOPS_API_ADMIN_KEY" in unset[catalog.MLFLOW] and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in unset[catalog.API]
    )
    assert "MLOPS_API_ADMIN_KEY" not in unset[catalog.API]
