"""supervisord config rendering: secrets stay out of the file (each program's launcher loads its own from a
private file), values survive supervisor's own parser."""

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
    supervisord_env,
    write_secret_files,
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


def test_secret_values_go_to_each_programs_file_not_the_config(tmp_path: Path) -> None:
    progs = [
        Program("a", ["/bin/a", "--port", "1"], env={"DB_URL": f"postgresql://u:{SECRET}@h/db", "MODE": "x"}),
        Program("b", ["/bin/b"], env={"DB_URL": f"postgresql://v:{SECRET}2@h/db", "OTHER": "y"}),
    ]
    conf, secret_env = render_config(progs, StatePaths(tmp_path), [SECRET])
    assert SECRET not in conf
    # the same name may hold different secrets for different programs (each has its own login)
    assert secret_env == {
        "a": {"DB_URL": f"postgresql://u:{SECRET}@h/db"},
        "b": {"DB_URL": f"postgresql://v:{SECRET}2@h/db"},
    }
    parsed = parse(conf, tmp_path)
    assert parsed["a"].environment == {"MODE": "x"}
    assert parsed["b"].environment == {"OTHER": "y"}


def test_secret_on_a_command_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="command line"):
        render_config([Program("a", ["/bin/a", f"--password={SECRET}"])], StatePaths(tmp_path), [SECRET])


def test_a_changed_secret_changes_the_config_but_the_config_holds_none(tmp_path: Path) -> None:
    first, _ = render_config([Program("a", ["/a"], env={"K": SECRET})], StatePaths(tmp_path), [SECRET])
    second, _ = render_config([Program("a", ["/a"], env={"K": SECRET + "2"})], StatePaths(tmp_path), [SECRET])
    assert first != second and SECRET not in first + second


def test_secret_files_are_private_and_loaded_by_the_launcher(tmp_path: Path) -> None:
    import json
    import os
    import stat
    import subprocess
    import sys

    from infra.local.programs import LAUNCHER

    paths = StatePaths(tmp_path)
    write_secret_files(paths, {"p": {"DB_URL": SECRET}, "q": {}})
    assert stat.S_IMODE(paths.secrets_file("p").stat().st_mode) == 0o600
    assert json.loads(paths.secrets_file("p").read_text()) == {"DB_URL": SECRET}
    env = {"PATH": os.environ["PATH"], STACK_MARKER_ENV: str(tmp_path), "SUPERVISOR_PROCESS_NAME": "p"}
    out = subprocess.run(
        [sys.executable, "-I", str(LAUNCHER), "/bin/sh", "-c", "echo ${DB_URL:-unset}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == SECRET
    write_secret_files(paths, {"q": {}})  # a program that is gone loses its file
    assert not paths.secrets_file("p").exists()


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


def test_supervisord_env_is_an_allow_list_without_secrets(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "HOME": "/root", "AWS_PROFILE": "prod", "MLOPS_STACK_MLFLOW_PORT": "1"}
    env = supervisord_env(StatePaths(tmp_path), base)
    assert env[STACK_MARKER_ENV] == str(tmp_path)
    assert env["PATH"].endswith("/usr/bin") and env["PATH"] != "/usr/bin"  # the venv comes first
    assert "AWS_PROFILE" not in env and "MLOPS_STACK_MLFLOW_PORT" not in env
    assert set(env) <= {*PASSTHROUGH_ENV, "PATH", STACK_MARKER_ENV}


def test_the_real_stack_config_holds_no_credential(ctx: BuildContext, tmp_path: Path) -> None:
    services = build_services(ctx, ctx.settings.enabled_services())
    conf, secret_env = render_config(all_programs(services), ctx.paths, ctx.creds.values())
    for value in ctx.creds.values():
        assert value not in conf
    parse(conf, tmp_path)  # supervisord accepts it
    # each service gets its own logins, and nothing of the others'
    creds = ctx.creds
    api, mlflow, scheduler = (secret_env[n] for n in (catalog.API, catalog.MLFLOW, catalog.AIRFLOW_SCHEDULER))
    assert api["AWS_SECRET_ACCESS_KEY"] == creds.s3_api_secret_key and api["MLOPS_API_ADMIN_KEY"] == creds.api_admin_key
    assert api["MLFLOW_TRACKING_PASSWORD"] == creds.mlflow_api_password
    assert mlflow["MLFLOW_BACKEND_STORE_URI"] == catalog.postgres_url(ctx.topo, creds, "mlflow")
    assert mlflow["AWS_SECRET_ACCESS_KEY"] == creds.s3_mlflow_secret_key
    assert scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == catalog.postgres_url(ctx.topo, creds, "airflow")
    assert scheduler["AWS_SECRET_ACCESS_KEY"] == creds.s3_pipeline_secret_key
    assert scheduler["MLFLOW_TRACKING_PASSWORD"] == creds.mlflow_pipeline_password
    for name, secrets in secret_env.items():
        values = " ".join(secrets.values())
        assert creds.postgres_password not in values, name  # the superuser's is the operator's only
        assert creds.s3_secret_key not in values, name  # so is the S3 root key
        if name != catalog.API:
            assert creds.api_admin_key not in values, name
