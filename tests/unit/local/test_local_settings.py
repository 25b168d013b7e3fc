"""StackSettings: defaults from the catalog, environment overrides, port checks, service switches."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra import catalog
from infra.local.settings import GRPC_OFFSET, LOCALSTACK_LAMBDA_PORTS, REPO_ROOT, StackSettings

pytestmark = pytest.mark.unit


def test_defaults_come_from_the_catalog() -> None:
    s = StackSettings()
    assert s.catalog_ports() == catalog.DEFAULT_PORTS
    assert s.state_dir == REPO_ROOT / ".stack"
    assert s.dags_folder == REPO_ROOT / "dags"
    assert s.s3_backend == "seaweedfs"
    topo = s.topology()
    assert topo.url(catalog.MLFLOW) == f"http://127.0.0.1:{catalog.DEFAULT_PORTS.mlflow}"


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_STACK_MLFLOW_PORT", "15001")
    monkeypatch.setenv("MLOPS_STACK_STATE_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("MLOPS_STACK_ENABLE_AIRFLOW", "false")
    monkeypatch.setenv("MLOPS_STACK_S3_BACKEND", "minio")
    s = StackSettings()
    assert s.mlflow_port == 15001
    assert s.catalog_ports().mlflow == 15001
    assert s.state_dir == tmp_path / "st"
    assert s.enable_airflow is False
    assert s.s3_backend == "minio"


def test_default_ports_do_not_collide_including_grpc_twins() -> None:
    ports = StackSettings().listening_ports()
    assert len(set(ports.values())) == len(ports)
    assert ports["seaweedfs master grpc"] == ports["seaweedfs master"] + GRPC_OFFSET
    assert ports["seaweedfs s3 grpc"] == catalog.DEFAULT_PORTS.s3 + GRPC_OFFSET


def test_port_collision_is_rejected() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        StackSettings(mlflow_port=8080)  # Airflow's
    with pytest.raises(ValidationError, match="used twice"):
        StackSettings(seaweed_master_port=catalog.DEFAULT_PORTS.s3)


def test_grpc_twin_collision_is_rejected() -> None:
    # the volume server's gRPC port (9334 + 10000) would land on the master's HTTP port
    with pytest.raises(ValidationError, match="used twice"):
        StackSettings(seaweed_master_port=19334)


def test_paired_ports_leave_room_for_the_twin() -> None:
    with pytest.raises(ValidationError):
        StackSettings(s3_port=60000)


def test_enabled_services_follow_the_catalog_order() -> None:
    s = StackSettings(enable_api=True)
    names = s.enabled_services()
    assert names == catalog.start_order(list(catalog.SERVICES))  # LocalStack included: 'auto' and it can run
    assert names.index(catalog.POSTGRES) < names.index(catalog.MLFLOW) < names.index(catalog.API)
    assert names.index(catalog.S3) < names.index(catalog.LOCALSTACK)
    without = StackSettings(enable_api=True, enable_localstack=False).enabled_services()
    assert without == catalog.start_order([n for n in catalog.SERVICES if n != catalog.LOCALSTACK])


def test_switches(tmp_path: Path) -> None:
    s = StackSettings(enable_airflow=False, enable_api=False, enable_localstack=False)
    assert s.enabled_services() == [catalog.POSTGRES, catalog.S3, catalog.MLFLOW]
    assert catalog.LOCALSTACK in StackSettings(enable_localstack=True).enabled_services()


def test_localstack_is_on_by_default_where_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.local import settings as settings_module

    assert StackSettings().enable_localstack == "auto"
    assert StackSettings().localstack_enabled() and StackSettings().localstack_off_reason() is None
    reason = "no Python 3.13 interpreter found (tried: ...)"
    monkeypatch.setattr(settings_module, "localstack_unavailable_reason", lambda: reason)
    off = StackSettings()
    assert catalog.LOCALSTACK not in off.enabled_services()
    assert off.localstack_off_reason() == reason  # `up` says so and carries on
    assert StackSettings(enable_localstack=True).localstack_enabled()  # explicit: required (fails at up)
    assert StackSettings(enable_localstack=False).localstack_off_reason() is None  # explicit: silent
    monkeypatch.setattr(StackSettings, "api_available", lambda self: False)
    assert "api/main.py" in str(StackSettings().localstack_off_reason())


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("0", False), ("1", True), ("false", False)])
def test_localstack_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: object) -> None:
    monkeypatch.setenv("MLOPS_STACK_ENABLE_LOCALSTACK", value)
    assert StackSettings().enable_localstack == expected
    monkeypatch.setenv("MLOPS_STACK_ENABLE_LOCALSTACK", "sometimes")
    with pytest.raises(ValidationError):
        StackSettings()


def test_localstack_unavailable_reason_explains_the_python_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.aws_lambda import localstack_venvs
    from infra.local import settings as settings_module

    monkeypatch.undo()  # the real function (the autouse fixture patched it)
    settings_module.localstack_unavailable_reason.cache_clear()
    monkeypatch.setattr(localstack_venvs, "find_python", lambda v: None if v == "3.13" else Path("/usr/bin/python3.12"))
    monkeypatch.setattr(
        localstack_venvs, "explain_python_search", lambda v: f"no Python {v} interpreter found (tried: x)"
    )
    try:
        assert settings_module.localstack_unavailable_reason() == "no Python 3.13 interpreter found (tried: x)"
    finally:
        settings_module.localstack_unavailable_reason.cache_clear()


def test_lambda_environment_ports() -> None:
    s = StackSettings(localstack_lambda_port=14610)
    ports = s.lambda_ports()
    assert ports == range(14610, 14610 + LOCALSTACK_LAMBDA_PORTS)
    assert set(ports) <= set(s.listening_ports().values())
    assert set(ports) <= set(s.ports_of([catalog.S3, catalog.LOCALSTACK]).values())
    assert not set(ports) & set(s.ports_of([catalog.S3]).values())
    with pytest.raises(ValidationError, match="used twice"):
        StackSettings(localstack_lambda_port=catalog.DEFAULT_PORTS.localstack - 3)  # the block covers 4566


def test_localstack_envs_are_shared_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert StackSettings().localstack_envs_dir == REPO_ROOT / ".tools" / "localstack-envs"
    monkeypatch.setenv("MLOPS_LOCALSTACK_ENVS", str(tmp_path / "envs"))
    assert StackSettings().localstack_envs_dir == tmp_path / "envs"
    monkeypatch.setenv("MLOPS_STACK_LOCALSTACK_ENVS_DIR", str(tmp_path / "other"))
    assert StackSettings().localstack_envs_dir == tmp_path / "other"


def test_a_service_needing_a_disabled_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs disabled"):
        StackSettings(enable_mlflow=False, enable_airflow=True).enabled_services()


def test_api_switch_defaults_to_whether_the_app_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StackSettings, "api_available", lambda self: False)
    assert catalog.API not in StackSettings().enabled_services()
    monkeypatch.setattr(StackSettings, "api_available", lambda self: True)
    assert catalog.API in StackSettings().enabled_services()
    assert catalog.API not in StackSettings(enable_api=False).enabled_services()


def test_every_catalog_service_has_a_switch() -> None:
    assert set(StackSettings().enabled()) == set(catalog.SERVICES)


def test_ports_of_running_services() -> None:
    s = StackSettings()
    ports = s.ports_of([catalog.POSTGRES, catalog.S3])
    assert ports[catalog.POSTGRES] == s.postgres_port
    assert ports[catalog.S3] == s.s3_port
    assert ports["seaweedfs s3 grpc"] == s.s3_port + GRPC_OFFSET
    assert ports["seaweedfs master"] == s.seaweed_master_port
    assert catalog.MLFLOW not in ports
    assert set(ports.values()) <= set(s.listening_ports().values())
    minio = StackSettings(s3_backend="minio").ports_of([catalog.S3])
    assert minio == {catalog.S3: s.s3_port, "minio console": s.minio_console_port}


def test_a_port_offset_moves_the_whole_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """One setting: every port (derived ones included) moves by the offset, and so does the state directory."""
    base = StackSettings()
    monkeypatch.setenv("MLOPS_STACK_PORT_OFFSET", "100")
    moved = StackSettings()
    assert moved.state_dir == REPO_ROOT / ".stack-100"
    before, after = base.listening_ports(), moved.listening_ports()
    assert set(before) == set(after)
    assert all(after[owner] == port + 100 for owner, port in before.items()), after
    assert not set(before.values()) & set(after.values())  # the two stacks share no port


def test_an_explicit_port_or_state_dir_wins_over_the_offset(tmp_path: Path) -> None:
    """Ports and the state directory set explicitly are taken as they are."""
    s = StackSettings(port_offset=100, mlflow_port=15001, state_dir=tmp_path)
    assert s.mlflow_port == 15001 and s.state_dir == tmp_path
    assert s.api_port == catalog.DEFAULT_PORTS.api + 100
