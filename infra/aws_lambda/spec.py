"""The prediction API as an AWS Lambda: every resource definition, as plain data.

Two deployers consume these definitions, so they cannot drift apart:

* the Pulumi program (``infra/aws_lambda/pulumi_component.py``) for LocalStack in Docker, and
* a boto3 deployer for a Docker-less LocalStack (added later).

Nothing here imports Pulumi or boto3: names, policy documents, the handler, the runtime, sizes, the path
of the zip and the builder of the function's environment (a thin wrapper of :func:`infra.catalog.api_env`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import catalog
from ml.settings import MLSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ZIP_PATH = Path("build/lambda/api-lambda.zip")  # relative to the repository root; built by `make lambda-zip`

AWS_ACCOUNT_ID = "000000000000"  # LocalStack's default account
LOCALSTACK_ACCESS_KEY = "test"  # LocalStack accepts any key; these are its documented dummies, not secrets
LOCALSTACK_SECRET_KEY = "test"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ASSUME_ROLE_POLICY: dict[str, Any] = _policy(
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
)

# Inline policies of the function's role, by policy name.
INLINE_POLICIES: dict[str, dict[str, Any]] = {
    "write-logs": _policy(
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:logs:*:*:*",
        }
    ),
    # The MLflow bucket: model artifacts (an MLflow server without --serve-artifacts) and the API's champion
    # cache (catalog.CHAMPION_CACHE_URI), which a new execution environment reads when MLflow cannot be reached.
    # Read only: the API process publishes the cache, the function never writes it.
    "read-models": _policy(
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [
                f"arn:aws:s3:::{bucket}{suffix}"
                for bucket in (catalog.MLFLOW_BUCKET, catalog.SERVING_BUCKET)
                for suffix in ("", "/*")
            ],
        }
    ),
}


@dataclass(frozen=True)
class LambdaSpec:
    """Everything needed to deploy the prediction API as a Lambda behind a Function URL and API Gateway."""

    code_bucket: str = "mlops-lambda-code"
    code_key: str = "api/api-lambda.zip"
    zip_path: Path = ZIP_PATH
    role_name: str = "mlops-api-lambda"
    assume_role_policy: dict[str, Any] = field(default_factory=lambda: ASSUME_ROLE_POLICY)
    inline_policies: dict[str, dict[str, Any]] = field(default_factory=lambda: INLINE_POLICIES)
    function_name: str = "mlops-api"
    handler: str = "api.lambda_handler.handler"
    runtime: str = "python3.12"
    architectures: tuple[str, ...] = ("x86_64",)
    memory_mb: int = 1024
    timeout_s: int = 60
    #: At most this many execution environments at once (reserved concurrency). Like Lambda, LocalStack starts
    #: one more environment whenever a request finds all of them busy, so a stall under load (a slow CPU, a
    #: cold start) snowballs into more cold starts; beyond this cap Lambda and LocalStack throttle (429)
    #: instead. The embedded stack's port block leaves room for 10 environments.
    reserved_concurrency: int = 8
    #: Execution environments the embedded stack starts right after deploying (concurrent first requests):
    #: with one spare, a request that finds the other busy (a slow moment of the machine) goes there instead
    #: of starting a cold one, whose start-up CPU would slow the others down in turn.
    warm_environments: int = 2
    function_url_auth_type: str = "NONE"
    rest_api_name: str = "mlops-api"
    stage_name: str = "prod"
    http_api_name: str = "mlops-api-http"

    def zip_file(self, root: Path = REPO_ROOT) -> Path:
        """Absolute path of the deployment package."""
        return self.zip_path if self.zip_path.is_absolute() else root / self.zip_path

    def require_zip(self, root: Path = REPO_ROOT) -> Path:
        """The deployment package, or :class:`FileNotFoundError` telling how to build it."""
        path = self.zip_file(root)
        if not path.is_file():
            raise FileNotFoundError(
                f"Lambda package {path} does not exist. Build it with `make lambda-zip` "
                "(python -m infra.aws_lambda.package_build), then run `pulumi up` again."
            )
        return path

    def policy_json(self, name: str) -> str:
        """One inline policy document as JSON."""
        return json.dumps(self.inline_policies[name], sort_keys=True)

    def assume_role_policy_json(self) -> str:
        """The role's trust policy as JSON."""
        return json.dumps(self.assume_role_policy, sort_keys=True)

    def rest_api_source_arn(self, region: str, rest_api_id: str, account: str = AWS_ACCOUNT_ID) -> str:
        """Source ARN that lets every method and stage of the REST API invoke the function."""
        return f"arn:aws:execute-api:{region}:{account}:{rest_api_id}/*/*"


LAMBDA = LambdaSpec()


def function_environment(
    creds: catalog.Credentials,
    settings: MLSettings | None = None,
    topo: catalog.Topology | None = None,
) -> dict[str, str]:
    """Environment of the Lambda: :func:`catalog.api_env` for a Topology (Docker network by default).

    With the Lambda's own S3 identity (read only: it never publishes the champion cache) and the API's
    MLflow login. LocalStack injects its own ``AWS_SESSION_TOKEN`` into every function; boto3 would send it
    along with the S3 keys below and the S3 server (MinIO) would reject the request, so it is blanked (boto3 treats an
    empty token as none). User variables override LocalStack's (checked in localstack-core 2026.3).
    Real AWS reserves the ``AWS_*`` key names, which is why the HTTP API option targets LocalStack Pro too.
    """
    topo = topo or catalog.Topology.docker()
    env = catalog.api_env(topo, creds, settings) | catalog.s3_client_env(topo, creds, "lambda")
    return {**env, "MLOPS_API_CACHE_PUBLISH": "false", "AWS_SESSION_TOKEN": ""}


def source_code_hash(path: Path) -> str:
    """Base64 SHA-256 of the package, as Lambda reports it (a change redeploys the function)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def localstack_rest_url(endpoint: str, rest_api_id: str, stage: str = LAMBDA.stage_name) -> str:
    """URL of a REST API stage in LocalStack's path form; append ``/predict`` and friends to it."""
    return f"{endpoint.rstrip('/')}/restapis/{rest_api_id}/{stage}/_user_request_"
