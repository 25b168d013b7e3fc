"""The Lambda in LocalStack: definitions shared with the boto3 deployer, and what the program makes of them."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import EnvProvider
from pulumi.runtime import rpc

from infra import catalog
from infra.aws_lambda import spec as lambda_spec
from infra.aws_lambda.spec import LAMBDA, function_environment, localstack_rest_url, source_code_hash
from tests.unit.infra.pulumi_harness import REPO, ProgramRun, expected_settings

pytestmark = pytest.mark.unit

ENDPOINT = "http://localhost:4566"


# ---------------------------------------------------------------------------------------------------------
# infra/aws_lambda/spec.py: plain data
# ---------------------------------------------------------------------------------------------------------
def test_lambda_spec_is_plain_data() -> None:
    tree = ast.parse(Path(lambda_spec.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"pulumi", "pulumi_aws", "boto3", "botocore"}}


def test_lambda_definitions() -> None:
    assert LAMBDA.handler == "api.lambda_handler.handler"
    assert LAMBDA.runtime == "python3.12"
    assert LAMBDA.zip_path == Path("build/lambda/api-lambda.zip")
    assert LAMBDA.function_url_auth_type == "NONE"
    assert LAMBDA.memory_mb >= 512 and 3 <= LAMBDA.timeout_s <= 900
    trust = json.loads(LAMBDA.assume_role_policy_json())
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    for name in LAMBDA.inline_policies:
        assert json.loads(LAMBDA.policy_json(name))["Version"] == "2012-10-17"


def test_missing_zip_message_tells_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make lambda-zip"):
        LAMBDA.require_zip(tmp_path)


def test_function_environment_wraps_the_catalog_api_env() -> None:
    creds = catalog.Credentials.generate()
    env = function_environment(creds)
    docker_topo = catalog.Topology.docker()
    assert env == {
        **catalog.api_env(docker_topo, creds),
        **catalog.s3_client_env(docker_topo, creds, "lambda"),  # its own S3 identity, read only
        "MLOPS_API_CACHE_PUBLISH": "false",
        "AWS_SESSION_TOKEN": "",
    }
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == catalog.s3_keys(creds, "lambda")
    assert env["MLFLOW_TRACKING_USERNAME"] == "api"  # the API's MLflow login: READ only
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5001"  # on the stack network
    assert env["AWS_ENDPOINT_URL_S3"] == "http://s3:9000"
    local = function_environment(creds, topo=catalog.Topology.local())
    assert local["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5001"


def test_empty_session_token_is_not_sent_by_boto3() -> None:
    # LocalStack injects its own AWS_SESSION_TOKEN into functions; we blank it so that MinIO accepts
    # requests signed with the stack's static keys.
    env = {"AWS_ACCESS_KEY_ID": "AKEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": ""}
    creds = EnvProvider(environ=env).load()
    assert creds is not None and creds.access_key == "AKEXAMPLE"
    request = AWSRequest(method="GET", url="http://s3:9000/mlflow", headers={})
    SigV4Auth(creds.get_frozen_credentials(), "s3", "us-east-1").add_auth(request)
    assert "X-Amz-Security-Token" not in request.headers


def test_rest_url_uses_localstack_path_form() -> None:
    assert (
        localstack_rest_url("http://localhost:4566/", "abc") == "http://localhost:4566/restapis/abc/prod/_user_request_"
    )


# ---------------------------------------------------------------------------------------------------------
# The program's Lambda resources
# ---------------------------------------------------------------------------------------------------------
def test_function_handler_runtime_and_package(dev_run: ProgramRun, lambda_zip: Path) -> None:
    function = dev_run.one("aws:lambda/function:Function", "lambda-function").inputs
    assert function["handler"] == "api.lambda_handler.handler"
    assert function["runtime"] == "python3.12"
    assert function["name"] == LAMBDA.function_name
    assert function["memorySize"] == LAMBDA.memory_mb and function["timeout"] == LAMBDA.timeout_s
    assert function["reservedConcurrentExecutions"] == LAMBDA.reserved_concurrency
    assert function["s3Bucket"] == LAMBDA.code_bucket and function["s3Key"] == LAMBDA.code_key
    digest = base64.b64encode(hashlib.sha256(lambda_zip.read_bytes()).digest()).decode()
    assert function["sourceCodeHash"] == digest == source_code_hash(lambda_zip)
    assert function["role"].endswith(f":role/{LAMBDA.role_name}")

    package = dev_run.one("aws:s3/bucketObjectv2:BucketObjectv2", "lambda-package").inputs
    assert Path(package["source"].path) == lambda_zip
    assert (package["bucket"], package["key"]) == (LAMBDA.code_bucket, LAMBDA.code_key)
    assert dev_run.one("aws:s3/bucket:Bucket", "lambda-code").inputs["bucket"] == LAMBDA.code_bucket


def test_function_environment_reaches_the_champion(dev_run: ProgramRun) -> None:
    function = dev_run.one("aws:lambda/function:Function", "lambda-function")
    expected = function_environment(dev_run.credentials(), expected_settings())
    assert function.inputs["environment"]["variables"] == expected
    assert expected["MLOPS_MODEL_NAME"] == "breast_cancer_classifier"
    wire = function.wire_inputs["environment"]
    assert rpc.is_rpc_secret(wire) or rpc.is_rpc_secret(wire["variables"])  # sent as a secret


def test_role_and_policies(dev_run: ProgramRun) -> None:
    role = dev_run.one("aws:iam/role:Role", "lambda-role").inputs
    assert role["name"] == LAMBDA.role_name
    assert json.loads(role["assumeRolePolicy"]) == LAMBDA.assume_role_policy
    policies = {r.inputs["name"]: r.inputs for r in dev_run.of_type("aws:iam/rolePolicy:RolePolicy")}
    assert set(policies) == set(LAMBDA.inline_policies)
    for name, policy in policies.items():
        assert json.loads(policy["policy"]) == LAMBDA.inline_policies[name]


def test_function_url(dev_run: ProgramRun) -> None:
    url = dev_run.one("aws:lambda/functionUrl:FunctionUrl", "lambda-url").inputs
    assert url == {"functionName": LAMBDA.function_name, "authorizationType": "NONE"}
    permission = dev_run.one("aws:lambda/permission:Permission", "lambda-url-invoke").inputs
    assert permission["action"] == "lambda:InvokeFunctionUrl" and permission["functionUrlAuthType"] == "NONE"


def test_rest_api_v1_proxies_everything_to_the_function(dev_run: ProgramRun) -> None:
    api = dev_run.one("aws:apigateway/restApi:RestApi", "lambda-rest").inputs
    assert api["name"] == LAMBDA.rest_api_name
    proxy = dev_run.one("aws:apigateway/resource:Resource", "lambda-proxy").inputs
    assert proxy == {"restApi": "abc123rest", "parentId": "root0000", "pathPart": "{proxy+}"}
    methods = {r.name: r.inputs for r in dev_run.of_type("aws:apigateway/method:Method")}
    assert {m["resourceId"] for m in methods.values()} == {"root0000", "lambda-proxy-id"}
    assert all(m["httpMethod"] == "ANY" and m["authorization"] == "NONE" for m in methods.values())
    integrations = [r.inputs for r in dev_run.of_type("aws:apigateway/integration:Integration")]
    assert {i["resourceId"] for i in integrations} == {"root0000", "lambda-proxy-id"}
    for integration in integrations:
        assert integration["type"] == "AWS_PROXY" and integration["integrationHttpMethod"] == "POST"
        assert integration["uri"].endswith(f"function:{LAMBDA.function_name}/invocations")
    deployment = dev_run.one("aws:apigateway/deployment:Deployment", "lambda-deployment")
    integration_urns = {r.urn for r in dev_run.of_type("aws:apigateway/integration:Integration")}
    assert integration_urns <= set(deployment.dependencies)
    stage = dev_run.one("aws:apigateway/stage:Stage", "lambda-stage").inputs
    assert stage["stageName"] == LAMBDA.stage_name and stage["deployment"] == "lambda-deployment-id"
    permission = dev_run.one("aws:lambda/permission:Permission", "lambda-rest-invoke").inputs
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert permission["sourceArn"] == "arn:aws:execute-api:us-east-1:000000000000:abc123rest/*/*"


def test_http_api_v2_is_an_option(dev_run: ProgramRun, options_run: ProgramRun) -> None:
    assert not dev_run.of_type("aws:apigatewayv2/api:Api")
    (api,) = options_run.of_type("aws:apigatewayv2/api:Api")
    assert api.inputs["protocolType"] == "HTTP"
    assert api.inputs["target"].endswith(f":function:{LAMBDA.function_name}")
    env = dict(e.split("=", 1) for e in options_run.containers["mlops-dev-localstack"].inputs["envs"])
    assert "apigatewayv2" in env["SERVICES"].split(",")
    assert options_run.outputs["lambdaHttpApiUrl"] == "https://def456http.execute-api.us-east-1.amazonaws.com"


@pytest.mark.parametrize(("run_name", "endpoint"), [("dev_run", ENDPOINT), ("options_run", "http://127.0.0.2:14566")])
def test_aws_provider_points_only_at_localstack(run_name: str, endpoint: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    (provider,) = run.of_type("pulumi:providers:aws")
    inputs = provider.inputs
    (endpoints,) = json.loads(inputs["endpoints"])
    assert set(endpoints.values()) == {endpoint}
    assert {"s3", "iam", "sts", "lambda", "apigateway", "apigatewayv2"} <= set(endpoints)
    for flag in ("skipCredentialsValidation", "skipRequestingAccountId", "skipMetadataApiCheck", "s3UsePathStyle"):
        assert inputs[flag] == "true", flag
    assert inputs["region"] == catalog.REGION
    aws = [r for r in run.registrations if r.type.startswith("aws:")]
    assert aws
    for reg in aws:  # no resource may fall back to a default (real AWS) provider
        assert reg.provider.startswith(f"{provider.urn}::"), f"{reg.type} {reg.name}"


def test_program_references_the_documented_zip_path() -> None:
    pulumi_dev = (REPO / "Pulumi.dev.yaml").read_text()
    assert f"lambdaZip: {LAMBDA.zip_path}" in pulumi_dev
    assert "make lambda-zip" in (REPO / "docs" / "pulumi-docker.md").read_text()


def test_function_url_output_uses_the_published_port() -> None:
    """LocalStack reports Function URLs on its container port (4566) whatever LOCALSTACK_HOST says."""
    from infra.aws_lambda.pulumi_component import on_published_port

    reported = "http://abc123.lambda-url.us-east-1.localhost.localstack.cloud:4566/"
    assert on_published_port(reported, "http://localhost:14566") == (
        "http://abc123.lambda-url.us-east-1.localhost.localstack.cloud:14566/"
    )
    aws = "https://abc123.lambda-url.us-east-1.on.aws/"
    assert on_published_port(aws, "http://localhost:14566") == aws
