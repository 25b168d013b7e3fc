"""Fixtures of the Docker tier: an engine, the stand-in images, and containers that clean up after themselves.

``docker_engine`` (session) finds or starts an engine (:func:`tests.docker.engine.ensure_engine`);
``standins`` (session) builds or reuses the stand-in images (:func:`ensure_standins`). When either is
impossible the tests are skipped with the reason, except with ``CI=true``, where that is a failure: a CI
job meant to run this tier must not pass by skipping it. ``MLOPS_DOCKER_KEEP_ENGINE=1`` keeps a daemon
that the session started running afterwards (the next session then reuses it). On an engine the session
did not start (someone's own), the stand-in images are removed at the end, so that none stays tagged with
an upstream name; ``MLOPS_DOCKER_KEEP_STANDINS=1`` keeps them (faster next run).

Everything a test creates is named ``mlops-standin-test-<session>-<test>-...`` and removed afterwards
(``resources`` fixture, :class:`tests.docker.helpers.DockerResources`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import docker
import pytest

from tests.docker import figures as tier_figures
from tests.docker.engine import Engine, EngineUnavailable, ensure_engine, is_ci
from tests.docker.helpers import NAME_PREFIX, DockerResources
from tests.docker.standins.build import Figures, StandinError, ensure_standins, remove_standins

_FIGURES = pytest.StashKey[dict[str, Figures]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, None)
    if figures:
        terminalreporter.write_sep("-", "docker tier: stand-in images")
        for item in figures.values():
            terminalreporter.write_line(item.summary())
    lines = tier_figures.summary()
    if lines:
        terminalreporter.write_sep("-", "docker tier: the Pulumi program on the engine")
        for line in lines:
            terminalreporter.write_line(line)


def _log_to_terminal(config: pytest.Config) -> Callable[[str], None]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def log(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[docker tier] {message}")
        else:
            print(f"[docker tier] {message}")

    return log


def unavailable(reason: str) -> NoReturn:
    """Skip (or, with CI=true, fail) because the Docker tier cannot run here."""
    if is_ci():
        pytest.fail(f"the Docker tier must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(f"Docker tier unavailable: {reason}")


@pytest.fixture(scope="session")
def docker_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    try:
        engine = ensure_engine(log=_log_to_terminal(request.config))
    except EngineUnavailable as exc:
        unavailable(exc.reason)
    yield engine
    if not engine.started and not os.environ.get("MLOPS_DOCKER_KEEP_STANDINS"):
        # An engine that was already there is someone's own: leave no stand-in tagged with an upstream name
        # (a later real `pulumi up` would run it instead of pulling the real image).
        removed = remove_standins(engine.client)
        if removed:
            _log_to_terminal(request.config)(
                f"removed {len(removed)} stand-in image(s) (keep: MLOPS_DOCKER_KEEP_STANDINS=1)"
            )
    if engine.started and not os.environ.get("MLOPS_DOCKER_KEEP_ENGINE"):
        engine.stop()


@pytest.fixture(scope="session")
def engine(docker_engine: Engine) -> Engine:
    """Alias of ``docker_engine``."""
    return docker_engine


@pytest.fixture(scope="session")
def standins(docker_engine: Engine, request: pytest.FixtureRequest) -> dict[str, Figures]:
    try:
        figures = ensure_standins(docker_engine.client, docker_engine.cli, log=_log_to_terminal(request.config))
    except StandinError as exc:
        unavailable(f"the stand-in images could not be built: {exc}")
    request.config.stash[_FIGURES] = figures
    return figures


@pytest.fixture(scope="session")
def docker_client(docker_engine: Engine, standins: dict[str, Figures]) -> docker.DockerClient:
    """The engine's client, once the stand-in images exist."""
    return docker_engine.client


@pytest.fixture(scope="session")
def session_token() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def resources(
    docker_client: docker.DockerClient, session_token: str, request: pytest.FixtureRequest
) -> Iterator[DockerResources]:
    test = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40].strip("-")
    tracked = DockerResources(docker_client, f"{NAME_PREFIX}{session_token}-{test}-")
    yield tracked
    tracked.cleanup()
