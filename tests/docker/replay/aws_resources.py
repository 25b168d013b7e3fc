"""pulumi-aws resources carried out against LocalStack with boto3 (the project's deployer's clients and waits).

Only the resource types of ``infra/aws_lambda/pulumi_component.py`` are known; each maps its inputs to the AWS
calls the Terraform AWS provider makes for them. The provider resource (``pulumi:providers:aws``) tells
which endpoint the resources go to: the program's provider points every service at LocalStack.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from infra import catalog
from infra.aws_lambda import localstack_deploy, localstack_endpoints
from infra.aws_lambda.spec import AWS_ACCOUNT_ID
from tests.docker.replay.errors import ReplayError, check_inputs

PROVIDER = "pulumi:providers:aws"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"
REST_API = "aws:apigateway/restApi:RestApi"
REST_RESOURCE = "aws:apigateway/resource:Resource"
METHOD = "aws:apigateway/method:Method"
INTEGRATION = "aws:apigateway/integration:Integration"
DEPLOYMENT = "aws:apigateway/deployment:Deployment"
STAGE = "aws:apigateway/stage:Stage"

INPUTS: dict[str, set[str]] = {
    PROVIDER: {
        "region",
        "accessKey",
        "secretKey",
        "skipCredentialsValidation",
        "skipRequestingAccountId",
        "skipMetadataApiCheck",
        "skipRegionValidation",
        "s3UsePathStyle",
        "endpoints",
        "version",
    },
    BUCKET: {"bucket", "forceDestroy"},
    BUCKET_OBJECT: {"bucket", "key", "source"},
    ROLE: {"name", "assumeRolePolicy"},
    ROLE_POLICY: {"name", "role", "policy"},
    FUNCTION: {
        "name",
        "role",
        "handler",
        "runtime",
        "architectures",
        "memorySize",
        "timeout",
        "s3Bucket",
        "s3Key",
        "sourceCodeHash",
        "environment",
        "reservedConcurrentExecutions",
    },
    FUNCTION_URL: {"functionName", "authorizationType"},
    PERMISSION: {"action", "function", "principal", "functionUrlAuthType", "sourceArn", "statementId"},
    REST_API: {"name"},
    REST_RESOURCE: {"restApi", "parentId", "pathPart"},
    METHOD: {"restApi", "resourceId", "httpMethod", "authorization"},
    INTEGRATION: {"restApi", "resourceId", "httpMethod", "type", "integrationHttpMethod", "uri"},
    DEPLOYMENT: {"restApi", "triggers"},
    STAGE: {"restApi", "deployment", "stageName"},
}
NOT_FOUND = {"NoSuchEntity", "NoSuchBucket", "NoSuchKey", "NotFoundException", "ResourceNotFoundException", "404"}
FUNCTION_TIMEOUT_S = 300.0  # the provider's create timeout is 10 min; a cold LocalStack image build is not needed here


def provider_endpoint(inputs: Mapping[str, Any]) -> str:
    """The one endpoint every service of a LocalStack provider points at (the program sets them all alike)."""
    raw = inputs.get("endpoints") or "[]"
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    urls = {url for block in blocks for url in block.values() if url}
    if len(urls) != 1:
        raise ReplayError(f"aws provider: expected one endpoint for all services, got {sorted(urls)}")
    return urls.pop()


class AwsResources:
    """Creates and deletes the program's AWS resources in the LocalStack its provider points at."""

    def __init__(self) -> None:
        self.endpoints: dict[str, str] = {}  # provider reference (urn::id) -> endpoint

    def create(self, typ: str, name: str, inputs: Mapping[str, Any], provider_ref: str) -> tuple[str, dict[str, Any]]:
        """Carry out one resource; returns its id and outputs."""
        if typ not in INPUTS:
            raise ReplayError(f"resource type {typ} ({name}) is not carried out by the replay")
        check_inputs(typ, name, inputs, INPUTS[typ])
        if typ == PROVIDER:
            return f"{name}-provider", dict(inputs)
        endpoint = self.endpoints.get(provider_ref)
        if endpoint is None:
            raise ReplayError(f"{typ} {name}: uses provider {provider_ref!r}, which is not a LocalStack provider")
        region = catalog.REGION
        client = lambda service: localstack_endpoints.aws_client(service, endpoint, region)  # noqa: E731
        out = dict(inputs)
        if typ == BUCKET:
            client("s3").create_bucket(Bucket=inputs["bucket"])
            return inputs["bucket"], out | {"arn": f"arn:aws:s3:::{inputs['bucket']}"}
        if typ == BUCKET_OBJECT:
            source = inputs["source"]
            path = getattr(source, "path", None)
            if path is None:
                raise ReplayError(f"{typ} {name}: only a FileAsset source is carried out")
            client("s3").upload_file(str(path), inputs["bucket"], inputs["key"])
            return f"{inputs['bucket']}/{inputs['key']}", out
        if typ == ROLE:
            role = client("iam").create_role(
                RoleName=inputs["name"], AssumeRolePolicyDocument=inputs["assumeRolePolicy"]
            )
            return inputs["name"], out | {"arn": role["Role"]["Arn"]}
        if typ == ROLE_POLICY:
            client("iam").put_role_policy(
                RoleName=inputs["role"], PolicyName=inputs["name"], PolicyDocument=inputs["policy"]
            )
            return f"{inputs['role']}:{inputs['name']}", out
        if typ == FUNCTION:
            return self._function(client("lambda"), region, inputs)
        if typ == FUNCTION_URL:
            config = client("lambda").create_function_url_config(
                FunctionName=inputs["functionName"], AuthType=inputs["authorizationType"]
            )
            return inputs["functionName"], out | {"functionUrl": config["FunctionUrl"]}
        if typ == PERMISSION:
            sid = inputs.get("statementId") or f"terraform-{uuid.uuid4().hex[:20]}"
            kwargs = {"FunctionName": inputs["function"], "StatementId": sid, "Action": inputs["action"]}
            kwargs["Principal"] = inputs["principal"]
            if inputs.get("sourceArn"):
                kwargs["SourceArn"] = inputs["sourceArn"]
            if inputs.get("functionUrlAuthType"):
                kwargs["FunctionUrlAuthType"] = inputs["functionUrlAuthType"]
            client("lambda").add_permission(**kwargs)
            return sid, out | {"statementId": sid}
        if typ == REST_API:
            api = client("apigateway").create_rest_api(name=inputs["name"])
            arn = f"arn:aws:execute-api:{region}:{AWS_ACCOUNT_ID}:{api['id']}"
            return api["id"], out | {"rootResourceId": api["rootResourceId"], "executionArn": arn}
        if typ == REST_RESOURCE:
            res = client("apigateway").create_resource(
                restApiId=inputs["restApi"], parentId=inputs["parentId"], pathPart=inputs["pathPart"]
            )
            return res["id"], out | {"path": res["path"]}
        if typ == METHOD:
            client("apigateway").put_method(
                restApiId=inputs["restApi"],
                resourceId=inputs["resourceId"],
                httpMethod=inputs["httpMethod"],
                authorizationType=inputs["authorization"],
            )
            return f"agm-{inputs['restApi']}-{inputs['resourceId']}-{inputs['httpMethod']}", out
        if typ == INTEGRATION:
            client("apigateway").put_integration(
                restApiId=inputs["restApi"],
                resourceId=inputs["resourceId"],
                httpMethod=inputs["httpMethod"],
                type=inputs["type"],
                integrationHttpMethod=inputs["integrationHttpMethod"],
                uri=inputs["uri"],
            )
            return f"agi-{inputs['restApi']}-{inputs['resourceId']}-{inputs['httpMethod']}", out
        if typ == DEPLOYMENT:
            dep = client("apigateway").create_deployment(restApiId=inputs["restApi"])
            return dep["id"], out
        # STAGE
        client("apigateway").create_stage(
            restApiId=inputs["restApi"], stageName=inputs["stageName"], deploymentId=inputs["deployment"]
        )
        return f"ags-{inputs['restApi']}-{inputs['stageName']}", out

    def register_provider(self, ref: str, inputs: Mapping[str, Any]) -> None:
        """Remember where a provider's resources go (``ref`` is ``<urn>::<id>``, as resources name it)."""
        self.endpoints[ref] = provider_endpoint(inputs)

    @staticmethod
    def _function(lam: Any, region: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        variables = (inputs.get("environment") or {}).get("variables") or {}
        lam.create_function(
            FunctionName=inputs["name"],
            Role=inputs["role"],
            Handler=inputs["handler"],
            Runtime=inputs["runtime"],
            Architectures=list(inputs.get("architectures") or ["x86_64"]),
            MemorySize=int(inputs.get("memorySize", 128)),
            Timeout=int(inputs.get("timeout", 3)),
            Code={"S3Bucket": inputs["s3Bucket"], "S3Key": inputs["s3Key"]},
            Environment={"Variables": dict(variables)},
            Publish=False,
        )
        # The AWS provider waits until the function is Active (and fails if it is not).
        config = localstack_deploy.wait_for_function(lam, inputs["name"], "function_active_v2", FUNCTION_TIMEOUT_S)
        if inputs.get("reservedConcurrentExecutions") is not None:
            lam.put_function_concurrency(
                FunctionName=inputs["name"], ReservedConcurrentExecutions=int(inputs["reservedConcurrentExecutions"])
            )
        if config.get("CodeSha256") != inputs.get("sourceCodeHash"):
            raise ReplayError(
                f"function {inputs['name']}: LocalStack reports code {config.get('CodeSha256')}, "
                f"the program declared {inputs.get('sourceCodeHash')}"
            )
        arn = config["FunctionArn"]
        return inputs["name"], dict(inputs) | {"arn": arn, "invokeArn": localstack_endpoints.invoke_arn(region, arn)}

    def delete(self, typ: str, rid: str, outputs: Mapping[str, Any], provider_ref: str) -> None:
        """Delete one resource (reverse dependency order is the caller's business).

        A resource that no longer exists counts as deleted, as in the Terraform AWS provider's deletes (e.g.
        after a LocalStack restart: its community edition keeps nothing).
        """
        if typ == PROVIDER:
            return
        try:
            self._delete(typ, rid, outputs, provider_ref)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in NOT_FOUND:
                raise

    def _delete(self, typ: str, rid: str, outputs: Mapping[str, Any], provider_ref: str) -> None:
        endpoint = self.endpoints[provider_ref]
        client = lambda service: localstack_endpoints.aws_client(service, endpoint, catalog.REGION)  # noqa: E731
        if typ == BUCKET:
            s3 = client("s3")
            if outputs.get("forceDestroy"):
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=rid):
                    for obj in page.get("Contents", []):
                        s3.delete_object(Bucket=rid, Key=obj["Key"])
            s3.delete_bucket(Bucket=rid)
        elif typ == BUCKET_OBJECT:
            client("s3").delete_object(Bucket=outputs["bucket"], Key=outputs["key"])
        elif typ == ROLE:
            client("iam").delete_role(RoleName=rid)
        elif typ == ROLE_POLICY:
            client("iam").delete_role_policy(RoleName=outputs["role"], PolicyName=outputs["name"])
        elif typ == FUNCTION:
            client("lambda").delete_function(FunctionName=rid)
        elif typ == FUNCTION_URL:
            client("lambda").delete_function_url_config(FunctionName=rid)
        elif typ == PERMISSION:
            client("lambda").remove_permission(FunctionName=outputs["function"], StatementId=rid)
        elif typ == REST_API:
            client("apigateway").delete_rest_api(restApiId=rid)
        elif typ == REST_RESOURCE:
            client("apigateway").delete_resource(restApiId=outputs["restApi"], resourceId=rid)
        elif typ == METHOD:
            client("apigateway").delete_method(
                restApiId=outputs["restApi"], resourceId=outputs["resourceId"], httpMethod=outputs["httpMethod"]
            )
        elif typ == INTEGRATION:
            client("apigateway").delete_integration(
                restApiId=outputs["restApi"], resourceId=outputs["resourceId"], httpMethod=outputs["httpMethod"]
            )
        elif typ == DEPLOYMENT:
            client("apigateway").delete_deployment(restApiId=outputs["restApi"], deploymentId=rid)
        elif typ == STAGE:
            client("apigateway").delete_stage(restApiId=outputs["restApi"], stageName=outputs["stageName"])
