"""LocalStack's environments and command line (no LocalStack started), and the pins that must agree."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

import infra.aws_lambda.localstack_plugin.mlops_localstack_lambda as plugin
from infra.aws_lambda import localstack_venvs as lsvenv

pytestmark = pytest.mark.unit

ENV_DIR = lsvenv.LOCALSTACK_PROJECT_DIR
PLUGIN_DIR = lsvenv.PLUGIN_DIR


def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def _locked_version(lock: Path, name: str) -> str:
    packages = _toml(lock)["package"]
    return next(p["version"] for p in packages if p["name"] == name)


def test_one_localstack_release_everywhere() -> None:
    assert plugin.LOCALSTACK_VERSION == lsvenv.LOCALSTACK_VERSION
    assert (
        f"localstack-core=={lsvenv.LOCALSTACK_VERSION}"
        in _toml(PLUGIN_DIR / "pyproject.toml")["project"]["dependencies"]
    )
    assert (
        f"localstack-core[runtime]=={lsvenv.LOCALSTACK_VERSION}"
        in _toml(ENV_DIR / "pyproject.toml")["project"]["dependencies"]
    )
    assert _locked_version(ENV_DIR / "uv.lock", "localstack-core") == lsvenv.LOCALSTACK_VERSION


def test_executor_name_and_variables_agree() -> None:
    entry_points = _toml(PLUGIN_DIR / "pyproject.toml")["project"]["entry-points"]
    group = entry_points["localstack.lambda.runtime_executor"]
    assert list(group) == [lsvenv.EXECUTOR_NAME] == [plugin.EXECUTOR_NAME]
    assert group[plugin.EXECUTOR_NAME] == "mlops_localstack_lambda.plugin:LocalProcessRuntimeExecutorPlugin"
    assert plugin.PYTHONS_ENV == lsvenv.PYTHONS_ENV
    assert _toml(PLUGIN_DIR / "pyproject.toml")["project"]["name"] == lsvenv.PLUGIN_DISTRIBUTION
    servers = entry_points["localstack.runtime.server"]
    assert servers == {plugin.GATEWAY_SERVER_NAME: "mlops_localstack_lambda.plugin:BoundTwistedRuntimeServerPlugin"}
    assert plugin.GATEWAY_SERVER_NAME == lsvenv.GATEWAY_SERVER_NAME


def test_required_pins_are_locked() -> None:
    lock = ENV_DIR / "uv.lock"
    assert _locked_version(lock, "pyopenssl") == "25.3.0"
    assert _locked_version(lock, "cryptography") == "46.0.7"
    assert int(_locked_version(lock, "cbor2").split(".")[0]) < 6
    assert _locked_version(lock, "service-identity")
    assert _toml(ENV_DIR / "pyproject.toml")["project"]["requires-python"].startswith(f">={lsvenv.LOCALSTACK_PYTHON}")
    assert _locked_version(lsvenv.RUNTIME_PROJECT_DIR / "uv.lock", "awslambdaric")


def test_version_check_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin.metadata, "version", lambda name: "2026.2.0")
    with pytest.raises(RuntimeError, match=r"LocalStack 2026\.3\.0.*but LocalStack 2026\.2\.0 is installed"):
        plugin.check_localstack_version()
    monkeypatch.setattr(plugin.metadata, "version", lambda name: plugin.LOCALSTACK_VERSION)
    assert plugin.check_localstack_version() == plugin.LOCALSTACK_VERSION


def test_runtime_mapping_from_the_environment() -> None:
    assert plugin.lambda_pythons({}) == {}
    assert plugin.lambda_pythons({plugin.PYTHONS_ENV: '{"python3.12": "/p/bin/python"}'}) == {
        "python3.12": "/p/bin/python"
    }
    with pytest.raises(ValueError):
        plugin.lambda_pythons({plugin.PYTHONS_ENV: '["python3.12"]'})


def test_command_and_env_for_host_mode(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "HOME": "/root", "SERVICES": "sqs", "LOCALSTACK_AUTH_TOKEN": "x", "VIRTUAL_ENV": "/v"}
    base |= {"AWS_ENDPOINT_URL": "http://elsewhere", "PYTHONPATH": "/repo"}
    argv, env = lsvenv.localstack_command_and_env(
        tmp_path / "venv", tmp_path / "state", 45123, base_env=base, extra_env={"LS_LOG": "debug"}
    )
    assert argv == [str(tmp_path / "venv" / "bin" / "python"), "-m", "localstack.runtime.main"]
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:45123"
    assert env["LOCALSTACK_HOST"] == "localhost:45123"  # Function URLs <id>.lambda-url.<region>.localhost:<port>
    assert env["GATEWAY_SERVER"] == "twisted-bound"  # LocalStack's twisted would listen on 0.0.0.0
    assert lsvenv.PORTS_ENV not in env  # any free port for the environments unless a range is given
    assert env["DNS_ADDRESS"] == "0"
    assert env["OVERRIDE_IN_DOCKER"] == "0"
    assert env["DISABLE_EVENTS"] == "1"
    assert env["LAMBDA_RUNTIME_EXECUTOR"] == "local-process"
    assert env["LS_LOG"] == "debug"
    state = (tmp_path / "state" / "localstack").resolve()
    for name, var in (("fs", "FILESYSTEM_ROOT"), ("tmp", "TMPDIR"), ("cache", "XDG_CACHE_HOME")):
        assert env[var] == str(state / name)
        assert (state / name).is_dir()
    pythons = json.loads(env[lsvenv.PYTHONS_ENV])
    assert pythons == {"python3.12": str((tmp_path / "state").resolve() / "lambda-python3.12" / "bin" / "python")}
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root"
    for dropped in ("SERVICES", "LOCALSTACK_AUTH_TOKEN", "VIRTUAL_ENV", "AWS_ENDPOINT_URL", "PYTHONPATH"):
        assert dropped not in env


def test_lambda_port_range(tmp_path: Path) -> None:
    _, env = lsvenv.localstack_command_and_env(tmp_path / "v", tmp_path / "s", 4566, lambda_ports=range(4610, 4642))
    assert env[lsvenv.PORTS_ENV] == "4610-4641"
    assert plugin.lambda_ports(env) == range(4610, 4642)
    assert plugin.PORTS_ENV == lsvenv.PORTS_ENV
    assert plugin.lambda_ports({}) is None
    for bad in ("4610", "x-y", "10-5", "0-3"):
        with pytest.raises(ValueError):
            plugin.lambda_ports({plugin.PORTS_ENV: bad})
    with pytest.raises(ValueError):
        lsvenv.localstack_command_and_env(tmp_path / "v", tmp_path / "s", 4566, lambda_ports=range(5, 5))


def test_python_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setenv(f"MLOPS_PYTHON_{version.replace('.', '_')}", sys.executable)
    lsvenv._search.cache_clear()
    try:
        assert lsvenv.find_python(version) == Path(sys.executable)
        assert lsvenv.find_python("1.9") is None
        reason = lsvenv.explain_python_search("1.9")
        assert "no Python 1.9 interpreter found" in reason and "MLOPS_PYTHON_1_9" in reason
    finally:
        lsvenv._search.cache_clear()
