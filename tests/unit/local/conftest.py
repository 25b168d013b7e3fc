"""Fixtures of the local stack's unit tests: settings on a temporary state directory, fake Postgres binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import catalog
from infra.local.layout import StatePaths
from infra.local.postgres import PgBinaries
from infra.local.programs import BuildContext
from infra.local.settings import StackSettings


@pytest.fixture(autouse=True)
def _no_stack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings tests must not see a developer's MLOPS_STACK_* variables."""
    import os

    for key in list(os.environ):
        if key.startswith("MLOPS_STACK_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _localstack_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """enable_localstack='auto' sees Python 3.13 and 3.12 as found (tests of 'auto' patch it otherwise)."""
    from infra.local import settings as settings_module

    monkeypatch.setattr(settings_module, "localstack_unavailable_reason", lambda: None)


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    """A stack on a temporary state directory, LocalStack off (its builder creates venvs: tested separately)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    return StackSettings(state_dir=tmp_path / "state", dags_folder=dags, enable_api=True, enable_localstack=False)


@pytest.fixture
def creds() -> catalog.Credentials:
    return catalog.Credentials.generate()


@pytest.fixture
def ctx(settings: StackSettings, creds: catalog.Credentials) -> BuildContext:
    binaries = PgBinaries(Path("/opt/pg/bin"), 18, "test")
    return BuildContext(settings, StatePaths(settings.state_dir), creds, settings.topology(), binaries, None)
