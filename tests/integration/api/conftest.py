"""Fixtures of the API's integration tests: a real MLflow server with S3 (moto), a real champion, API processes.

One registry stack and one breast cancer champion (trained by the ML library's real pipeline) per session.
Each test that needs its own registered model trains it under a model name of its own. The built Lambda
zip (unpacked) and its Python 3.12 runtime are session fixtures too, shared by the Lambda tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.aws_lambda import package_build
from infra.catalog import CHAMPION_CACHE_URI
from tests.integration.api.api_stack import REPO, ApiProcess, start_api, train_champion
from tests.support.mlflow_server import RegistryStack, start_registry_stack

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
    """The API's environment, as infra/catalog.py:api_env renders it, plus test knobs.

    Pass ``MLOPS_API_CACHE_DIR`` for a local champion cache of the test's own (the default, <TMPDIR>, is
    shared by everything on the machine). Only the default model is served (``MLOPS_API_MODELS``): the
    session's registry also holds models other tests trained (the fuzz test's wine and diabetes, the
    service test's loan model), which would otherwise be discovered, depending on the order tests run in.
    """
    return {
        **stack.env,
        "MLOPS_MODEL_NAME": model_name,
        "MLOPS_API_ADMIN_KEY": ADMIN_KEY,
        "MLOPS_API_CACHE_S3_URI": CHAMPION_CACHE_URI,
        "MLOPS_API_POLL_INTERVAL_S": "1",
        "MLOPS_API_RETRY_INTERVAL_S": "1",
        "MLOPS_API_REGISTRY_TIMEOUT_S": "3",
        "MLOPS_API_MODELS": "breast_cancer",
        **extra,
    }


StartApi = Callable[..., ApiProcess]


@pytest.fixture
def start_api_process(registry_stack: RegistryStack, api_root: Path) -> Iterator[StartApi]:
    """Start API processes for a test (stopped at its end); keywords are extra environment variables."""
    started: list[ApiProcess] = []

    def start(model_name: str = CHAMPION_MODEL, **extra: str) -> ApiProcess:
        log = api_root / f"api-{model_name}-{len(started)}.log"
        extra.setdefault("MLOPS_API_CACHE_DIR", str(api_root / f"cache-{model_name}-{len(started)}"))
        api = start_api(api_env(registry_stack, model_name, **extra), log)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


# ------------------------------------------------------------------------------------------------- Lambda
ENVS_DIR = Path(os.environ.get("MLOPS_LOCALSTACK_ENVS") or REPO / ".tools" / "localstack-envs")


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Lambda zip, built once per session."""
    if package_build.find_python312() is None:
        pytest.skip("no Python 3.12 interpreter (the python3.12 runtime's wheels and bytecode need one)")
    built, _, _ = package_build.build(tmp_path_factory.mktemp("zip-a"))
    return built


@pytest.fixture(scope="session")
def built_zips(lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Lambda zip built twice, in two directories."""
    second, _, _ = package_build.build(tmp_path_factory.mktemp("zip-b"))
    return lambda_zip, second


@pytest.fixture(scope="session")
def code_dir(lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip unpacked, as Lambda does into /var/task."""
    target = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(lambda_zip) as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def runtime_python() -> Path:
    """Python 3.12 with awslambdaric and boto3 (what AWS's python3.12 images provide)."""
    lambda_venv = pytest.importorskip(
        "infra.aws_lambda.localstack_venvs", reason="the Lambda runtime environment helper is missing"
    )
    try:
        return Path(lambda_venv.ensure_lambda_runtime(ENVS_DIR, "python3.12"))
    except RuntimeError as exc:
        pytest.skip(str(exc))
