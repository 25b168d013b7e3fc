"""StackSettings: defaults from the catalog, environment overrides, port checks, service switches."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra import catalog
from infra.local.settings import GRPC_OFFSET, REPO_ROOT, StackSettings

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
    assert names == catalog.start_order([n for n in catalog.SERVICES if n != catalog.LOCALSTACK])
    assert names.index(catalog.POSTGRES) < names.index(catalog.MLFLOW) < names.index(catalog.API)


def test_switches(tmp_path: Path) -> None:
    s = StackSettings(enable_airflow=False, enable_api=False)
    assert s.enabled_services() == [catalog.POSTGRES, catalog.S3, catalog.MLFLOW]
    assert catalog.LOCALSTACK in StackSettings(enable_localstack=True).enabled_services()


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
