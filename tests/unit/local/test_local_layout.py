"""State directory layout and the credentials file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra import catalog
from infra.local.layout import StatePaths, load_or_create_credentials, write_private

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first, created = load_or_create_credentials(path)
    assert created
    assert mode(path) == 0o600
    assert set(json.loads(path.read_text())) == set(catalog.Credentials.names())
    again, created_again = load_or_create_credentials(path)
    assert not created_again
    assert again == first


def test_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    load_or_create_credentials(path)
    path.chmod(0o644)
    load_or_create_credentials(path)
    assert mode(path) == 0o600


def test_credentials_of_an_older_stack_get_the_missing_roles_generated(tmp_path: Path) -> None:
    """A stack made before the per-service roles keeps its secrets; the new roles' are generated once."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"postgres_password": "x", "s3_access_key": "AKOLD"}))
    creds, created = load_or_create_credentials(path)
    assert not created and creds.postgres_password == "x" and creds.s3_access_key == "AKOLD"
    assert creds.s3_api_access_key.startswith("AK") and creds.mlflow_api_password
    assert load_or_create_credentials(path)[0] == creds  # written back: the same next time
    assert mode(path) == 0o600


def test_write_private_replaces_atomically_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_create_makes_the_tree_and_marker(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    assert not paths.is_stack_dir()
    paths.create()
    assert paths.is_stack_dir()
    for d in (paths.logs, paths.s3_data, paths.airflow_home, paths.postgres):
        assert d.is_dir()
    assert mode(paths.postgres) == 0o700
    assert paths.log("mlflow") == paths.logs / "mlflow.log"
    assert paths.airflow_paths(tmp_path).passwords_file.startswith(str(paths.airflow_home))


def test_socket_path_length_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        StatePaths(tmp_path / ("x" * 120)).create()
