"""LocalStack in host mode with the local-process Lambda executor: deploy a zip with boto3 and call it.

One LocalStack on a free port in a temporary directory for the whole module. Its environments (Python 3.13
for LocalStack, 3.12 for the function's runtime) are created once under ``.tools/localstack-envs`` (or
``$MLOPS_LOCALSTACK_ENVS``) and reused while their locks are unchanged.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from infra.aws_lambda import localstack_venvs as lsvenv
from tests.integration.localstack.localstack_helpers import LocalStack, running_localstack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REGION = "us-east-1"
FUNCTION = "hello"

HANDLER_CODE = """
import json
import os
import sys
import time

import boto3

INIT_PID = os.getpid()


def handler(event, context):
    print("event:", json.dumps(event)[:200])
    if event.get("fail"):
        raise RuntimeError("requested failure")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    result = {
        "message": "hello",
        "request_id": context.aws_request_id,
        "python": "%d.%d" % sys.version_info[:2],
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "greeting": os.environ.get("GREETING"),
    }
    if "s3" in event:  # reach LocalStack's S3 from the function (AWS_ENDPOINT_URL + the role's credentials)
        obj = boto3.client("s3").get_object(Bucket=event["s3"]["bucket"], Key=event["s3"]["key"])
        result["s3"] = obj["Body"].read().decode()
    if "httpMethod" in event or "requestContext" in event:  # API Gateway REST v1 proxy or Function URL
        path = event.get("path") or event.get("rawPath")
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({**result, "path": path}),
        }
    return result
"""


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_localstack(
        tmp_path_factory.mktemp("localstack"), extra_env={"LAMBDA_KEEPALIVE_MS": "60000"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def function_arn(localstack: LocalStack) -> str:
    s3, iam, lam = localstack.client("s3"), localstack.client("iam"), localstack.client("lambda")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.py", HANDLER_CODE)
    s3.create_bucket(Bucket="lambda-code")
    s3.put_object(Bucket="lambda-code", Key="hello.zip", Body=buf.getvalue())
    s3.put_object(Bucket="lambda-code", Key="note.txt", Body=b"from s3")
    role = iam.create_role(
        RoleName="hello-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    arn = lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"S3Bucket": "lambda-code", "S3Key": "hello.zip"},
        Timeout=30,
        Environment={"Variables": {"GREETING": "hi"}},
    )["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=FUNCTION, WaiterConfig={"Delay": 0.25, "MaxAttempts": 240})
    return arn


def _invoke(localstack: LocalStack, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    response = localstack.client("lambda").invoke(FunctionName=FUNCTION, Payload=json.dumps(event), LogType="Tail")
    return response, json.loads(response["Payload"].read())


def _http_get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_localstack_starts_quickly_in_host_mode(localstack: LocalStack) -> None:
    print(
        f"environments ready in {localstack.env_seconds:.1f} s, LocalStack healthy in {localstack.start_seconds:.1f} s"
    )
    health = json.loads(_http_get(lsvenv.health_url(localstack.port))[1])
    assert health["version"].startswith(lsvenv.LOCALSTACK_VERSION)
    assert health["services"]["lambda"] in ("available", "running")


def test_invoke_returns_the_handlers_result(localstack: LocalStack, function_arn: str) -> None:
    response, payload = _invoke(localstack, {"name": "x", "s3": {"bucket": "lambda-code", "key": "note.txt"}})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, payload
    assert payload["message"] == "hello"
    assert payload["python"] == "3.12"  # the runtime's interpreter, not LocalStack's 3.13
    assert payload["execution_env"] == "AWS_Lambda_python3.12"
    assert payload["greeting"] == "hi"
    assert payload["s3"] == "from s3"
    logs = base64.b64decode(response["LogResult"]).decode()
    assert f"END RequestId: {payload['request_id']}" in logs
    assert "event:" in logs
    # A warm invocation reuses the environment and is fast.
    t0 = time.monotonic()
    _, again = _invoke(localstack, {"name": "y"})
    assert again["message"] == "hello"
    assert time.monotonic() - t0 < 5


def test_handler_error_is_a_function_error(localstack: LocalStack, function_arn: str) -> None:
    response, payload = _invoke(localstack, {"fail": True})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "RuntimeError"
    assert payload["errorMessage"] == "requested failure"
    _, ok = _invoke(localstack, {})  # the environment survives a handler error
    assert ok["message"] == "hello"


def test_function_url_answers(localstack: LocalStack, function_arn: str) -> None:
    lam = localstack.client("lambda")
    url = lam.create_function_url_config(FunctionName=FUNCTION, AuthType="NONE")["FunctionUrl"]
    lam.add_permission(
        FunctionName=FUNCTION,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    # http://<id>.lambda-url.us-east-1.localhost:<port>/ -- curl resolves *.localhost itself, Python does not: send
    # the request to the gateway with the function URL's Host header, which is what LocalStack routes on.
    host = urlsplit(url).netloc
    assert host.endswith(f":{localstack.port}"), url
    status, body = _http_get(f"{localstack.endpoint}/hello/url?q=1", host=host)
    assert status == 200, body
    doc = json.loads(body)
    assert doc["message"] == "hello"
    assert doc["path"] == "/hello/url"
    # The URL as LocalStack reports it works as is in curl (it resolves *.localhost to 127.0.0.1 itself).
    if shutil.which("curl"):
        done = subprocess.run(["curl", "-sS", f"{url.rstrip('/')}/hello/curl"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["path"] == "/hello/curl"


def test_rest_api_v1_proxy_integration(localstack: LocalStack, function_arn: str) -> None:
    apigw, lam = localstack.client("apigateway"), localstack.client("lambda")
    api_id = apigw.create_rest_api(name="hello-api")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    proxy = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
    apigw.put_method(restApiId=api_id, resourceId=proxy, httpMethod="ANY", authorizationType="NONE")
    apigw.put_integration(
        restApiId=api_id,
        resourceId=proxy,
        httpMethod="ANY",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )
    lam.add_permission(
        FunctionName=FUNCTION,
        StatementId="apigw",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
    )
    apigw.create_deployment(restApiId=api_id, stageName="test")
    status, body = _http_get(f"{localstack.endpoint}/restapis/{api_id}/test/_user_request_/predict/one")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["message"] == "hello"
    assert doc["path"] == "/predict/one"
    # The same through the newer path (LocalStack marks _user_request_ deprecated since 3.8).
    status, body = _http_get(f"{localstack.endpoint}/_aws/execute-api/{api_id}/test/predict/two")
    assert status == 200, body
    assert json.loads(body)["path"] == "/predict/two"


def test_function_timeout_is_an_error_and_the_runtime_is_replaced(localstack: LocalStack, function_arn: str) -> None:
    lam = localstack.client("lambda")
    lam.update_function_configuration(FunctionName=FUNCTION, Timeout=1)
    lam.get_waiter("function_updated_v2").wait(FunctionName=FUNCTION, WaiterConfig={"Delay": 0.25, "MaxAttempts": 240})
    response, payload = _invoke(localstack, {"sleep": 3})
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    response, payload = _invoke(localstack, {"name": "after"})
    assert "FunctionError" not in response, payload
    assert payload["message"] == "hello"


def test_runtime_without_an_interpreter_fails_clearly(localstack: LocalStack, function_arn: str) -> None:
    lam = localstack.client("lambda")
    lam.create_function(
        FunctionName="no-interpreter",
        Runtime="python3.11",  # only python3.12 is mapped to an interpreter
        Role="arn:aws:iam::000000000000:role/hello-lambda",
        Handler="app.handler",
        Code={"S3Bucket": "lambda-code", "S3Key": "hello.zip"},
    )
    deadline = time.monotonic() + 60
    while (config := lam.get_function_configuration(FunctionName="no-interpreter"))["State"] == "Pending":
        assert time.monotonic() < deadline, config
        time.sleep(0.25)
    assert config["State"] == "Failed"
    assert "no interpreter for runtime python3.11" in config["StateReason"]


def test_direct_upload_over_50_mb_is_rejected(localstack: LocalStack) -> None:
    # Rejected on size before the archive is read: the bytes need not be a zip, and zeros are cheap.
    too_big = bytes(52_428_800 + 1)
    with pytest.raises(ClientError) as excinfo:
        localstack.client("lambda").create_function(
            FunctionName="too-big",
            Runtime="python3.12",
            Role="arn:aws:iam::000000000000:role/hello-lambda",
            Handler="app.handler",
            Code={"ZipFile": too_big},
        )
    assert excinfo.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
