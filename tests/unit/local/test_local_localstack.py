"""The LocalStack service of the embedded stack, offline: its program, its health check's verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import catalog
from infra.aws_lambda import local_deployment, local_service
from infra.aws_lambda import localstack_venvs as lsvenv
from infra.local import health, programs
from infra.local.layout import StatePaths
from infra.local.programs import BuildContext, build_services
from infra.local.settings import StackSettings
from infra.local.supervisor import render_config

pytestmark = pytest.mark.unit


@pytest.fixture
def ls_ctx(ctx: BuildContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BuildContext:
    """The build context with LocalStack on and its environments faked (no uv, no venvs)."""
    envs = tmp_path / "envs"
    monkeypatch.setattr(lsvenv, "ensure_venv", lambda d: Path(d) / "localstack-venv")
    monkeypatch.setattr(lsvenv, "ensure_lambda_runtime", lambda d, rt: Path(d) / f"lambda-{rt}" / "bin" / "python")
    settings = ctx.settings.model_copy(update={"enable_localstack": True, "localstack_envs_dir": envs})
    return BuildContext(settings, ctx.paths, ctx.creds, settings.topology(), ctx.pg_binaries)


def test_localstack_program(ls_ctx: BuildContext) -> None:
    services = build_services(ls_ctx, ls_ctx.settings.enabled_services())
    prog = services[catalog.LOCALSTACK].program
    envs = ls_ctx.settings.localstack_envs_dir
    assert prog.command[-3:] == [str(envs / "localstack-venv" / "bin" / "python"), "-m", "localstack.runtime.main"]
    assert str(programs.LAUNCHER) in prog.command
    env = prog.env
    port = ls_ctx.settings.localstack_port
    assert env["GATEWAY_LISTEN"] == f"127.0.0.1:{port}"
    assert env["GATEWAY_SERVER"] == "twisted-bound"  # binds GATEWAY_LISTEN's host (twisted: all interfaces)
    assert env["LOCALSTACK_HOST"] == f"localhost:{port}"
    ports = ls_ctx.settings.lambda_ports()
    assert env[lsvenv.PORTS_ENV] == f"{ports.start}-{ports.stop - 1}"
    assert json.loads(env[lsvenv.PYTHONS_ENV]) == {"python3.12": str(envs / "lambda-python3.12" / "bin" / "python")}
    state = ls_ctx.paths.root / "localstack"
    for var in ("FILESYSTEM_ROOT", "TMPDIR", "XDG_CACHE_HOME"):
        assert Path(env[var]).is_relative_to(state.resolve()), var
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == ""  # supervisord's secret keys blanked
    assert "PATH" not in env  # supervisord provides it
    # LocalStack's cross-site guard lets the Function URL's own pages through (/docs loads assets with its Referer)
    assert env["EXTRA_CORS_ALLOWED_ORIGINS"].split(",") == [
        f"http://mlops-api.lambda-url.us-east-1.localhost:{port}",
        f"http://mlops-api.lambda-url.us-east-1.localhost.localstack.cloud:{port}",
    ]
    assert prog.stopasgroup  # the function runtimes are its children
    # The supervisord config renders, with no secret in it.
    conf, _ = render_config(programs.all_programs(services), ls_ctx.paths, ls_ctx.creds.values())
    assert "[program:localstack]" in conf
    assert not any(v in conf for v in ls_ctx.creds.values())


def test_localstack_is_built_only_when_enabled(ctx: BuildContext, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Path:
        raise AssertionError("LocalStack's venv must not be touched when LocalStack is off")

    monkeypatch.setattr(lsvenv, "ensure_venv", boom)
    assert catalog.LOCALSTACK not in build_services(ctx, ctx.settings.enabled_services())


def test_missing_python_fails_the_builder_with_the_explanation(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(d: Path) -> Path:
        raise RuntimeError(lsvenv.explain_python_search("9.99"))

    monkeypatch.setattr(lsvenv, "ensure_venv", missing)
    with pytest.raises(RuntimeError, match=r"no Python 9\.99 interpreter found"):
        programs.BUILDERS[catalog.LOCALSTACK](ctx)


def test_health_check_of_localstack_goes_through_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[catalog.Topology] = []

    def fake_check(topo: catalog.Topology) -> health.Health:
        calls.append(topo)
        return health.Health(True, "function answers")

    monkeypatch.setattr(local_service, "check", fake_check)
    topo = StackSettings().topology()
    assert health.check(catalog.LOCALSTACK, topo, catalog.Credentials.generate()).detail == "function answers"
    assert calls == [topo]


def test_localstack_down_is_unhealthy_with_the_reason() -> None:
    s = StackSettings(localstack_port=1)  # nothing listens there
    result, eps = local_service.status(s.topology())
    assert not result.ok and eps is None
    assert "/_localstack/health" in result.detail


def test_docker_fallback_is_explained() -> None:
    detail = local_service.explain_failure("function mlops-api is Failed: Docker not available")
    assert "local-process executor plugin" in detail
    assert local_service.explain_failure("timeout") == "timeout"


def test_a_failed_deployment_is_reported_by_the_start_gate(tmp_path: Path) -> None:
    job = local_deployment.LambdaDeployment(StackSettings().topology(), catalog.Credentials.generate(), print)
    assert not job.health().ok and "checking the zip" in job.health().detail
    job.failed = "deploying failed: DeployError: function mlops-api is Failed: no interpreter"
    assert job.health() == health.Health(False, job.failed)


def test_paths_are_under_the_state_dir(ls_ctx: BuildContext) -> None:
    assert isinstance(ls_ctx.paths, StatePaths)
    prog = programs.BUILDERS[catalog.LOCALSTACK](ls_ctx).program
    assert prog.directory == ls_ctx.paths.root / "localstack"


def test_docker_fallback_is_found_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "localstack.log"
    log.write_text(f"WARN runtime_executor: Invalid specified plugin name x. {local_service.DOCKER_FALLBACK_LOG}\n")
    detail = local_service.explain_failure("function mlops-api is Failed: Installation of lambda-runtime failed", log)
    assert "fell back to its Docker executor" in detail and str(log) in detail
    assert not local_service.fell_back_to_docker(tmp_path / "missing.log")
    assert local_service.explain_failure("timeout", tmp_path / "missing.log") == "timeout"


def test_ready_hook_redeploys_in_the_background_with_the_stacks_settings(ls_ctx: BuildContext, tmp_path: Path) -> None:
    """The builder writes LocalStack's ready.d script under its FILESYSTEM_ROOT; run for real (with a stand-in
    interpreter that records its arguments), it returns at once and starts `redeploy-lambda` with a snapshot
    of the stack's settings."""
    import os
    import stat
    import subprocess
    import time

    prog = programs.BUILDERS[catalog.LOCALSTACK](ls_ctx).program
    hook = local_service.ready_hook_path(ls_ctx.paths)
    assert hook.is_file() and stat.S_IMODE(hook.stat().st_mode) == 0o700
    assert hook.is_relative_to(Path(prog.env["FILESYSTEM_ROOT"]) / "etc" / "localstack" / "init" / "ready.d")
    snapshot = local_service.settings_snapshot_path(ls_ctx.paths)
    assert StackSettings.model_validate_json(snapshot.read_text()) == ls_ctx.settings
    assert not any(v in snapshot.read_text() + hook.read_text() for v in ls_ctx.creds.values())

    record = tmp_path / "args.json"
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\nsleep 1\nprintf "%s\\n" "$@" > {record}\n')
    fake_python.chmod(0o755)
    hook = local_service.write_ready_hook(ls_ctx.paths, ls_ctx.settings, python=str(fake_python))
    started = time.monotonic()
    subprocess.run([str(hook)], check=True, timeout=10, env={"PATH": os.environ["PATH"]})
    assert time.monotonic() - started < 1  # LocalStack does not wait for the deployment
    deadline = time.monotonic() + 10
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record.read_text().split() == ["-m", "infra.local", "redeploy-lambda", "--settings-file", str(snapshot)]


def test_redeploy_leaves_the_lambda_to_a_running_up(ls_ctx: BuildContext) -> None:
    """While another process holds the stack lock (up/down/destroy), redeploy-lambda does nothing."""
    from infra.local.stack import Stack

    holder, other = Stack(ls_ctx.settings), Stack(ls_ctx.settings)
    with holder.locked():
        assert other.redeploy_lambda().startswith("nothing to do now")


def test_redeploy_without_localstack_in_the_stack(ctx: BuildContext) -> None:
    from infra.local.stack import Stack

    settings = ctx.settings.model_copy(update={"enable_localstack": False})
    assert Stack(settings).redeploy_lambda() == "LocalStack is not part of this stack"
