"""Fixtures of the API's integration tests: a real MLflow server with S3 (moto), a real champion, API processes.

One registry stack and one breast cancer champion (trained by the ML library's real pipeline) per session.
Each test that needs its own registered model trains it under a model name of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.api_stack import ApiProcess, RegistryStack, start_api, start_registry_stack, train_champion

ADMIN_KEY = "integration-admin-key"
CHAMPION_MODEL = "api_it_breast_cancer"


@pytest.fixture(scope="session")
def api_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="mlops-api-it-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def registry_stack(api_root: Path) -> Iterator[RegistryStack]:
    """moto S3 and an MLflow server (SQLite, artifacts proxied to S3) for the whole session."""
    stack = start_registry_stack(api_root / "registry")
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def champion(registry_stack: RegistryStack) -> dict[str, Any]:
    """A breast cancer champion registered by the real pipeline (search + gate)."""
    result = train_champion(registry_stack, CHAMPION_MODEL)
    assert result["decision"]["promoted"], result["decision"]
    return result


def api_env(stack: RegistryStack, model_name: str, **extra: str) -> dict[str, str]:
    """The API's environment, as infra/catalog.py:api_env renders it, plus test knobs."""
    return {
        **stack.env,
        "MLOPS_MODEL_NAME": model_name,
        "MLOPS_API_ADMIN_KEY": ADMIN_KEY,
        "MLOPS_API_POLL_INTERVAL_S": "1",
        "MLOPS_API_RETRY_INTERVAL_S": "1",
        "MLOPS_API_REGISTRY_TIMEOUT_S": "3",
        **extra,
    }


StartApi = Callable[..., ApiProcess]


@pytest.fixture
def start_api_process(registry_stack: RegistryStack, api_root: Path) -> Iterator[StartApi]:
    """Start API processes for a test (stopped at its end); keywords are extra environment variables."""
    started: list[ApiProcess] = []

    def start(model_name: str = CHAMPION_MODEL, **extra: str) -> ApiProcess:
        log = api_root / f"api-{model_name}-{len(started)}.log"
        api = start_api(api_env(registry_stack, model_name, **extra), log)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
