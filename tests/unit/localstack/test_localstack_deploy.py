"""The boto3 deployer against moto: it applies every field of LambdaSpec (drift guard), and is idempotent.

moto's server stands in for LocalStack's control plane (S3, IAM, Lambda, API Gateway); nothing runs here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.aws_lambda import localstack_deploy, localstack_endpoints
from infra.aws_lambda.spec import LAMBDA, LambdaSpec, source_code_hash
from tests.support.moto_s3 import running_moto_s3

pytestmark = pytest.mark.unit


def _zip(path: Path, marker: str) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", f"def sentinel(event, context):\n    return {marker!r}\n")
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with running_moto_s3() as url:
        yield url


@pytest.fixture
def sentinel_spec(tmp_path: Path, request: pytest.FixtureRequest) -> LambdaSpec:
    """A spec whose every field has a distinctive value (unique per test: moto's state is shared)."""
    tag = request.node.name.replace("_", "-")[-20:].strip("-")
    return LambdaSpec(
        code_bucket=f"code-{tag}",
        code_key=f"keys/{tag}.zip",
        zip_path=_zip(tmp_path / "sentinel.zip", "v1"),
        role_name=f"role-{tag}",
        assume_role_policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TrustSentinel",
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        inline_policies={
            f"policy-{tag}": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{tag}/*"}],
            }
        },
        function_name=f"fn-{tag}",
        handler="h.sentinel",
        runtime="python3.11",
        architectures=("arm64",),
        memory_mb=777,
        timeout_s=42,
        reserved_concurrency=3,
        function_url_auth_type="AWS_IAM",
        rest_api_name=f"rest-{tag}",
        stage_name="sentinelstage",
        http_api_name=f"http-{tag}",
    )


ENV = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5001", "AWS_SESSION_TOKEN": "", "MLOPS_MODEL_NAME": "m"}


def _deploy(endpoint: str, spec: LambdaSpec, env: dict[str, str] = ENV) -> localstack_deploy.DeployResult:
    return localstack_deploy.deploy(endpoint, env, spec=spec, zip_path=spec.zip_path, timeout=30)


def test_every_field_of_the_spec_is_accounted_for() -> None:
    names = {f.name for f in dataclasses.fields(LambdaSpec)}
    assert set(localstack_deploy.SPEC_FIELDS) | set(localstack_deploy.NOT_DEPLOYED) == names
    assert not set(localstack_deploy.SPEC_FIELDS) & set(localstack_deploy.NOT_DEPLOYED)
    assert set(localstack_deploy.FUNCTION_PARAMETERS) <= set(localstack_deploy.SPEC_FIELDS)


def test_the_deployer_applies_every_field(moto_endpoint: str, sentinel_spec: LambdaSpec) -> None:
    spec = sentinel_spec
    result = _deploy(moto_endpoint, spec)
    s3, iam, lam, apigw = (
        localstack_endpoints.aws_client(s, moto_endpoint) for s in ("s3", "iam", "lambda", "apigateway")
    )
    seen: dict[str, Any] = {}

    head = s3.head_object(Bucket=spec.code_bucket, Key=spec.code_key)
    seen["code_bucket"] = seen["code_key"] = True
    seen["zip_path"] = head["Metadata"][localstack_deploy.CODE_SHA256_METADATA] == source_code_hash(spec.zip_path)

    role = iam.get_role(RoleName=spec.role_name)["Role"]
    seen["role_name"] = True
    doc = role["AssumeRolePolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    seen["assume_role_policy"] = doc["Statement"][0]["Sid"] == "TrustSentinel"
    seen["inline_policies"] = iam.list_role_policies(RoleName=spec.role_name)["PolicyNames"] == list(
        spec.inline_policies
    )

    cfg = lam.get_function_configuration(FunctionName=spec.function_name)
    seen["function_name"] = cfg["FunctionName"] == spec.function_name
    seen["handler"] = cfg["Handler"] == "h.sentinel"
    seen["runtime"] = cfg["Runtime"] == "python3.11"
    seen["architectures"] = cfg["Architectures"] == ["arm64"]
    seen["memory_mb"] = cfg["MemorySize"] == 777
    seen["timeout_s"] = cfg["Timeout"] == 42
    concurrency = lam.get_function_concurrency(FunctionName=spec.function_name)
    seen["reserved_concurrency"] = concurrency["ReservedConcurrentExecutions"] == 3
    assert cfg["Role"] == role["Arn"]
    assert cfg["Environment"]["Variables"] == ENV
    assert cfg["CodeSha256"] == source_code_hash(spec.zip_path)

    url = lam.get_function_url_config(FunctionName=spec.function_name)
    seen["function_url_auth_type"] = url["AuthType"] == "AWS_IAM"
    assert result.endpoints.function_url == url["FunctionUrl"]

    api = next(a for a in apigw.get_rest_apis()["items"] if a["id"] == result.endpoints.rest_api_id)
    seen["rest_api_name"] = api["name"] == spec.rest_api_name
    seen["stage_name"] = apigw.get_stage(restApiId=api["id"], stageName="sentinelstage")["stageName"] == "sentinelstage"
    resources = {r["path"]: r for r in apigw.get_resources(restApiId=api["id"])["items"]}
    assert set(resources) == {"/", "/{proxy+}"}
    for resource in resources.values():
        integration = apigw.get_integration(restApiId=api["id"], resourceId=resource["id"], httpMethod="ANY")
        assert integration["type"] == "AWS_PROXY"
        assert integration["uri"] == localstack_endpoints.invoke_arn("us-east-1", cfg["FunctionArn"])
    assert result.endpoints.rest_url.endswith(f"/restapis/{api['id']}/sentinelstage/_user_request_")
    assert result.endpoints.execute_api_url.endswith(f"/_aws/execute-api/{api['id']}/sentinelstage")

    policy = json.loads(lam.get_policy(FunctionName=spec.function_name)["Policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements[localstack_deploy.URL_PERMISSION_SID]["Action"] == "lambda:InvokeFunctionUrl"
    assert spec.rest_api_source_arn("us-east-1", api["id"]) in json.dumps(
        statements[localstack_deploy.REST_PERMISSION_SID]
    )

    # LocalStack-only: fixed ids for stable URLs (moto stores the tags without honouring them).
    ids = localstack_endpoints.custom_ids(spec)
    assert lam.list_tags(Resource=cfg["FunctionArn"])["Tags"] == {
        localstack_endpoints.CUSTOM_ID_TAG: ids["function_url"]
    }
    assert api["tags"] == {localstack_endpoints.CUSTOM_ID_TAG: ids["rest_api"]}

    # Every deployed field was checked above; the one left out really is left out.
    assert {k for k, ok in seen.items() if ok} == set(localstack_deploy.SPEC_FIELDS)
    http_apis = localstack_endpoints.aws_client("apigatewayv2", moto_endpoint).get_apis()["Items"]
    assert spec.http_api_name not in {a["Name"] for a in http_apis}


def test_deploying_twice_changes_nothing(moto_endpoint: str, sentinel_spec: LambdaSpec) -> None:
    first = _deploy(moto_endpoint, sentinel_spec)
    assert first.changed
    again = _deploy(moto_endpoint, sentinel_spec)
    assert again.changed == []
    assert again.endpoints == first.endpoints
    assert localstack_deploy.find_endpoints(moto_endpoint, sentinel_spec) == first.endpoints


def test_changes_are_applied_and_only_them(moto_endpoint: str, sentinel_spec: LambdaSpec, tmp_path: Path) -> None:
    _deploy(moto_endpoint, sentinel_spec)
    bigger = dataclasses.replace(sentinel_spec, memory_mb=2048)
    changed = _deploy(moto_endpoint, bigger, {**ENV, "EXTRA": "1"}).changed
    assert changed == [f"lambda function {bigger.function_name} configuration (Environment, MemorySize)"]
    new_code = dataclasses.replace(bigger, zip_path=_zip(tmp_path / "v2.zip", "v2"))
    changed = _deploy(moto_endpoint, new_code, {**ENV, "EXTRA": "1"}).changed
    assert changed == [
        f"s3 object {new_code.code_bucket}/{new_code.code_key}",
        f"lambda function {new_code.function_name} code",
    ]
    cfg = localstack_endpoints.aws_client("lambda", moto_endpoint).get_function_configuration(
        FunctionName=new_code.function_name
    )
    assert cfg["CodeSha256"] == source_code_hash(new_code.zip_path)


def test_find_endpoints_of_nothing(moto_endpoint: str) -> None:
    assert localstack_deploy.find_endpoints(moto_endpoint, dataclasses.replace(LAMBDA, function_name="absent")) is None


def test_endpoint_forms_and_curl_commands() -> None:
    eps = localstack_endpoints.LambdaEndpoints(
        gateway="http://127.0.0.1:4566",
        function_name="mlops-api",
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:mlops-api",
        function_url="http://abc.lambda-url.us-east-1.localhost:4566/",
        function_url_host="abc.lambda-url.us-east-1.localhost:4566",
        function_url_local="http://127.0.0.1:4566/",
        rest_api_id="r1",
        stage="prod",
        rest_url="http://127.0.0.1:4566/restapis/r1/prod/_user_request_",
        execute_api_url="http://127.0.0.1:4566/_aws/execute-api/r1/prod",
    )
    assert eps.function_url_request("/predict") == (
        "http://127.0.0.1:4566/predict",
        {"Host": "abc.lambda-url.us-east-1.localhost:4566"},
    )
    curl = eps.curl_commands("/ready")
    assert curl["function_url"] == "curl http://abc.lambda-url.us-east-1.localhost:4566/ready"
    assert curl["function_url_host_header"] == (
        "curl -H 'Host: abc.lambda-url.us-east-1.localhost:4566' http://127.0.0.1:4566/ready"
    )
    assert curl["rest_v1"] == "curl http://127.0.0.1:4566/restapis/r1/prod/_user_request_/ready"
