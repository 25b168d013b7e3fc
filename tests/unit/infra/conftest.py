"""Fixtures of the Pulumi program's tests: mocked runs of ``infra/__main__.py`` with different configs.

Each run executes the whole program once (a fraction of a second); the tests then inspect what it
registered. ``dev_run`` is the dev stack with no config but the Lambda package and one credential set as
secret config (so both credential paths, config and pulumi-random, are exercised): it checks the
defaults. ``Pulumi.dev.yaml`` itself is loaded by its own test, whatever values you gave it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.infra.pulumi_harness import CONFIGURED_S3_SECRET, ProgramRun, run_program


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for build/lambda/api-lambda.zip (the program only hashes and uploads it)."""
    path = tmp_path_factory.mktemp("lambda") / "api-lambda.zip"
    path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
    return path


@pytest.fixture(scope="session")
def dev_run(lambda_zip: Path) -> ProgramRun:
    """The program with the default config (Lambda on, HTTP API off, no training trigger)."""
    return run_program({"lambdaZip": str(lambda_zip)}, {"s3SecretKey": CONFIGURED_S3_SECRET})


@pytest.fixture(scope="session")
def options_run(lambda_zip: Path) -> ProgramRun:
    """The program with every option on: HTTP API, training trigger, other host ports and bind address."""
    config = {
        "lambdaZip": str(lambda_zip),
        "triggerTraining": True,
        "localstack": {"httpApi": "true"},  # as `pulumi config set --path` stores it: a string
        "ports": {"mlflow": 15001, "localstack": 14566},
        "bindAddress": "127.0.0.2",
    }
    return run_program(config)


def pytest_configure(config: pytest.Config) -> None:
    """pulumi-aws warns about its own deprecated resource classes at import time: not ours to fix."""
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
