"""LocalStack silently falls back to its Docker executor when the configured one is not installed: the
stack's deployment and health check must catch that and say why, not report a working Lambda.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest

from infra.aws_lambda import localstack_deploy
from infra.aws_lambda.local_service import DOCKER_FALLBACK_LOG, explain_failure
from infra.aws_lambda.spec import LAMBDA
from tests.integration.localstack.localstack_helpers import running_localstack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_missing_executor_plugin_is_caught_and_explained(tmp_path: Path) -> None:
    package = tmp_path / "hello.zip"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return 'hello'\n")
    spec = dataclasses.replace(LAMBDA, zip_path=package, handler="app.handler", function_name="fallback")
    with running_localstack(tmp_path / "state", extra_env={"LAMBDA_RUNTIME_EXECUTOR": "no-such-executor"}) as ls:
        with pytest.raises(localstack_deploy.DeployError) as excinfo:
            localstack_deploy.deploy(ls.endpoint, {}, spec=spec, zip_path=package, timeout=60)
        assert "is Failed" in str(excinfo.value)
        assert DOCKER_FALLBACK_LOG in ls.log_path.read_text()
        detail = explain_failure(f"deploying failed: {excinfo.value}", ls.log_path)
        print(detail)
        assert "fell back to its Docker executor" in detail and "infra/aws_lambda/localstack_plugin" in detail
