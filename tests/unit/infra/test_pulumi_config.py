"""Stack configuration validation and the healthcheck renderer (pure functions, no program run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc

from infra import catalog
from infra.components import health
from infra.components.config import (
    ConfigError,
    HostPorts,
    LocalStackSettings,
    StackConfig,
    UpstreamImages,
    check_pinned,
    config_object,
    localstack_needs_token,
    secret_config_key,
)
from ml.settings import MLSettings
from ml.spec import available_datasets
from tests.unit.infra.pulumi_harness import PROJECT, REPO, ProgramRun, clear_strings, dev_config, run_program

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "ref",
    [
        "postgres:17.6",
        "minio/minio:RELEASE.2025-04-22T22-12-26Z",
        "localstack/localstack:4.14.0",
        "postgres@sha256:" + "a" * 64,
        "registry.local:5000/postgres:17.6",
    ],
)
def test_pinned_images_are_accepted(ref: str) -> None:
    assert check_pinned("images.x", ref) == ref


@pytest.mark.parametrize(
    "ref", ["postgres", "minio/minio:latest", "localstack/localstack:stable", "registry.local:5000/postgres"]
)
def test_floating_images_are_rejected(ref: str) -> None:
    with pytest.raises(ConfigError, match="not pinned"):
        check_pinned("images.x", ref)


@pytest.mark.parametrize(
    ("ref", "needs"),
    [
        ("localstack/localstack:4.14.0", False),
        ("localstack/localstack:4.13", False),
        ("localstack/localstack:3.8.1", False),
        ("localstack/localstack:4.14.1", True),
        ("localstack/localstack:2026.3.0", True),
        ("localstack/localstack:latest", True),
    ],
)
def test_localstack_auth_token_rule(ref: str, needs: bool) -> None:
    assert localstack_needs_token(ref) is needs


def test_newer_localstack_without_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="localstackAuthToken"):
        StackConfig(stack="dev", name_prefix="x", images=UpstreamImages(localstack="localstack/localstack:4.15.0"))
    StackConfig(
        stack="dev",
        name_prefix="x",
        images=UpstreamImages(localstack="localstack/localstack:4.15.0"),
        localstack_auth_token=pulumi.Output.secret("token"),
    )


def test_config_objects_reject_unknown_keys_and_coerce_strings() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        config_object(HostPorts, "ports", {"mlfow": 5001})
    assert config_object(HostPorts, "ports", {"mlflow": "15001"}).mlflow == 15001
    assert config_object(LocalStackSettings, "localstack", {"httpApi": "true"}).http_api is True
    with pytest.raises(ConfigError, match="expected bool"):
        config_object(LocalStackSettings, "localstack", {"deployLambda": "yes please"})


def test_dev_stack_config_loads(lambda_zip: Path) -> None:
    """Pulumi.dev.yaml (as committed, or as you changed it) is valid: known keys, right types, pinned images."""
    config = dev_config()
    assert {"ports", "images", "trialBudget", "localstack"} <= set(config)  # the documented settings
    run = run_program({**config, "lambdaZip": str(lambda_zip)})
    prefix = config.get("namePrefix", "mlops-dev")
    assert len(run.containers) >= len(catalog.SERVICES) + 2
    assert all(name.startswith(f"{prefix}-") for name in run.containers)


def test_defaults_match_the_catalog() -> None:
    defaults = StackConfig(stack="dev", name_prefix="mlops-dev")
    assert defaults.bind_address == "127.0.0.1"
    for name, port in catalog.DEFAULT_PORTS.as_dict().items():
        assert getattr(defaults.ports, name) == port, name
    assert defaults.trial_budget == MLSettings.model_fields["n_trials"].default


def test_datasets_select_the_active_set_and_the_default_must_be_in_it() -> None:
    shipped = available_datasets()
    assert StackConfig(stack="dev", name_prefix="p").active_datasets() == shipped  # default: all
    one = StackConfig(stack="dev", name_prefix="p", datasets=shipped[0], dataset=shipped[0])
    assert one.active_datasets() == [shipped[0]] and one.ml_settings().datasets == shipped[0]
    with pytest.raises(ConfigError, match=r"datasets='no_such_dataset'.*unknown dataset"):
        StackConfig(stack="dev", name_prefix="p", datasets="no_such_dataset")
    with pytest.raises(ConfigError, match=r"default dataset MLOPS_DATASET='elsewhere' is not active"):
        StackConfig(stack="dev", name_prefix="p", datasets=shipped[0], dataset="elsewhere")


def test_datasets_may_be_a_yaml_list(lambda_zip: Path) -> None:
    shipped = available_datasets()
    run = run_program({"lambdaZip": str(lambda_zip), "datasets": shipped[:1], "dataset": shipped[0]})
    scheduler = next(c for c in run.containers.values() if c.inputs.get("hostname") == catalog.AIRFLOW_SCHEDULER)
    assert f"MLOPS_DATASETS={shipped[0]}" in scheduler.inputs["envs"]


def test_unknown_config_keys_are_rejected(lambda_zip: Path) -> None:
    with pytest.raises(ConfigError, match="trialBuget"):
        run_program({"lambdaZip": str(lambda_zip), "trialBuget": 5})


def test_dev_config_holds_no_secret_in_clear() -> None:
    raw = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    assert all(key.startswith(f"{PROJECT}:") for key in raw)  # namespaced
    secret_keys = {secret_config_key(name) for name in catalog.Credentials.names()} | {"localstackAuthToken"}
    for key, value in raw.items():
        if key.split(":", 1)[1] in secret_keys:  # set with `pulumi config set --secret`: encrypted
            assert isinstance(value, dict) and set(value) == {"secure"}, f"{key} is in clear"


def test_pulumi_project_file() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv", "virtualenv": ".venv"}}


def test_configured_auth_token_is_passed_as_a_secret(lambda_zip: Path) -> None:
    config = {"lambdaZip": str(lambda_zip), "images": {"localstack": "localstack/localstack:4.15.0"}}
    run: ProgramRun = run_program(config, {"localstackAuthToken": "ls-token-Xy12345678"})
    localstack = run.containers["mlops-dev-localstack"]
    assert "LOCALSTACK_AUTH_TOKEN=ls-token-Xy12345678" in localstack.inputs["envs"]
    assert rpc.is_rpc_secret(localstack.wire_inputs["envs"])
    for reg in run.registrations:
        assert not [path for path, text in clear_strings(reg.wire_inputs) if "ls-token-Xy12345678" in text]


# ---------------------------------------------------------------------------------------------------------
# Healthcheck rendering
# ---------------------------------------------------------------------------------------------------------
def test_render_each_kind() -> None:
    topo = catalog.Topology.docker()
    pg = health.for_service(catalog.POSTGRES, topo)
    assert pg.tests == ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "mlops", "-d", "postgres"]
    assert health.for_service(catalog.S3, topo).tests == ["CMD", "mc", "ready", "local"]
    mlflow = health.for_service(catalog.MLFLOW, topo)
    assert mlflow.tests[:3] == ["CMD", "python", "-c"] and "http://127.0.0.1:5001/health" in mlflow.tests[3]
    ls = health.for_service(catalog.LOCALSTACK, topo, probe="curl")
    assert ls.tests[:2] == ["CMD", "curl"] and ls.tests[-1] == "http://127.0.0.1:4566/_localstack/health"
    scheduler = health.for_service(catalog.AIRFLOW_SCHEDULER, topo)
    assert scheduler.tests == ["CMD", "airflow", "jobs", "check", "--job-type", "SchedulerJob", "--local"]
    # The Airflow CLI takes seconds to start: never probe it every 5 s with a 3 s timeout.
    assert scheduler.interval == "30s" and scheduler.timeout == "30s" and scheduler.start_interval == "5s"
    assert mlflow.interval == "5s" and mlflow.timeout == "3s" and mlflow.retries == 24


def test_python_probe_fails_on_http_errors() -> None:
    tests = health.http_probe("http://127.0.0.1:9/nothing", 1)
    result = subprocess.run([sys.executable, *tests[2:]], capture_output=True, timeout=30)
    assert result.returncode != 0


def test_durations() -> None:
    assert health.duration(5) == "5s" and health.duration(2.5) == "2500ms"
    assert health.wait_timeout_s(catalog.SERVICES[catalog.MLFLOW].health) == 10 + 24 * 8 + 60
