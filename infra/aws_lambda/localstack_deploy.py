"""Deploy the prediction API as a Lambda into LocalStack with boto3: the definitions of :mod:`.spec`.

The Pulumi component (:mod:`.pulumi_component`) deploys the same :class:`~infra.aws_lambda.spec.LambdaSpec`
into a LocalStack container; this module deploys it into a Docker-less LocalStack (host mode, see
``infra/aws_lambda/README.md``) where Pulumi's CLI is not available. Both read every name, document and
setting from the spec, and the function's environment from :func:`infra.aws_lambda.spec.function_environment`.

Resources, in order (each created when missing, updated when different, left alone when equal):

1. S3 bucket ``code_bucket`` and object ``code_key``: the zip (above Lambda's 50 MB direct-upload limit,
   hence S3), uploaded only when its SHA-256 (kept in the object's metadata) differs;
2. IAM role ``role_name`` with ``assume_role_policy`` and the ``inline_policies`` (extra ones removed);
3. the function (``function_name``, handler, runtime, architectures, memory, timeout, environment), code from
   S3; code updated when ``CodeSha256`` differs, configuration when any setting differs; its reserved
   concurrency;
4. its Function URL (``function_url_auth_type``) and the ``lambda:InvokeFunctionUrl`` permission;
   the URL's id and the REST API's are fixed with LocalStack's ``_custom_id_`` tag (:func:`custom_ids`), so
   that the URLs stay the same across LocalStack restarts (``http://mlops-api.lambda-url.us-east-1.localhost:
   <port>/``, ``.../restapis/mlops-api/prod/_user_request_``);
5. REST API ``rest_api_name`` (v1): ``ANY`` on ``/`` and ``/{proxy+}``, both ``AWS_PROXY`` integrations to the
   function; a deployment to stage ``stage_name`` when something changed or the stage is missing; the
   ``lambda:InvokeFunction`` permission for API Gateway.

The HTTP API (``http_api_name``) is not deployed: API Gateway v2 is a LocalStack Pro feature (the Pulumi
component creates it only on request). :data:`SPEC_FIELDS` records, in one place, how every field of the
spec is used here and what boto3 calls it where Pulumi's name differs; a unit test checks that it covers
every field.

LocalStack's community edition keeps nothing across restarts, so the stack calls :func:`deploy` after every
LocalStack start; on a running LocalStack a second call changes nothing (``DeployResult.changed`` is empty).

Public API: :func:`deploy`, :func:`find_endpoints`, :func:`wait_for_function`, :data:`SPEC_FIELDS`; the
endpoints (:class:`~infra.aws_lambda.localstack_endpoints.LambdaEndpoints`), the fixed ids and the boto3
client are in :mod:`.localstack_endpoints`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import catalog
from infra.aws_lambda.localstack_endpoints import (
    CUSTOM_ID_TAG,
    LambdaEndpoints,
    aws_client,
    custom_ids,
    invoke_arn,
    lambda_endpoints,
)
from infra.aws_lambda.spec import LAMBDA, LambdaSpec, source_code_hash

#: How each field of :class:`LambdaSpec` is used by this deployer: ``(boto3 call(s) and parameter, Pulumi's
#: name)``. The one place where boto3's names (``MemorySize``...) meet the spec's (``memory_mb``) and
#: Pulumi's (``memory_size``). Fields deliberately not deployed are in :data:`NOT_DEPLOYED`.
SPEC_FIELDS: dict[str, tuple[str, str]] = {
    "code_bucket": ("s3.create_bucket(Bucket) / lambda Code.S3Bucket", "aws.s3.Bucket(bucket) / Function(s3_bucket)"),
    "code_key": ("s3.upload_file(Key) / lambda Code.S3Key", "BucketObjectv2(key) / Function(s3_key)"),
    "zip_path": ("the file uploaded (LambdaSpec.zip_file())", "FileAsset(source)"),
    "role_name": ("iam.create_role(RoleName)", "aws.iam.Role(name)"),
    "assume_role_policy": ("iam.create_role(AssumeRolePolicyDocument)", "Role(assume_role_policy)"),
    "inline_policies": ("iam.put_role_policy(PolicyName, PolicyDocument)", "aws.iam.RolePolicy(name, policy)"),
    "function_name": ("lambda FunctionName", "Function(name)"),
    "handler": ("lambda Handler", "Function(handler)"),
    "runtime": ("lambda Runtime", "Function(runtime)"),
    "architectures": ("lambda Architectures", "Function(architectures)"),
    "memory_mb": ("lambda MemorySize", "Function(memory_size)"),
    "timeout_s": ("lambda Timeout", "Function(timeout)"),
    "reserved_concurrency": (
        "lambda.put_function_concurrency(ReservedConcurrentExecutions)",
        "Function(reserved_concurrent_executions)",
    ),
    "function_url_auth_type": ("lambda.create_function_url_config(AuthType)", "FunctionUrl(authorization_type)"),
    "rest_api_name": ("apigateway.create_rest_api(name)", "aws.apigateway.RestApi(name)"),
    "stage_name": ("apigateway.create_deployment(stageName)", "aws.apigateway.Stage(stage_name)"),
}
#: Fields of :class:`LambdaSpec` this deployer leaves out, with the reason.
NOT_DEPLOYED: dict[str, str] = {
    "warm_environments": "not a resource: the embedded stack's first requests after deploying (local_service)",
    "http_api_name": "API Gateway v2 (HTTP APIs) is LocalStack Pro only (Pulumi: only with localstack.httpApi)",
}
#: boto3 parameter of each function setting taken from the spec (CreateFunction / UpdateFunctionConfiguration).
FUNCTION_PARAMETERS: dict[str, str] = {
    "function_name": "FunctionName",
    "handler": "Handler",
    "runtime": "Runtime",
    "memory_mb": "MemorySize",
    "timeout_s": "Timeout",
}

#: Statement ids of the function's resource policy.
URL_PERMISSION_SID = "function-url-invoke"
REST_PERMISSION_SID = "rest-api-invoke"
#: Metadata key of the code object holding the zip's SHA-256 (base64, Lambda's ``CodeSha256`` format).
CODE_SHA256_METADATA = "code-sha256"


class DeployError(RuntimeError):
    """The function could not be deployed or did not become active (the message says why)."""


@dataclass
class DeployResult:
    """What :func:`deploy` did."""

    endpoints: LambdaEndpoints
    code_sha256: str
    changed: list[str] = field(default_factory=list)
    seconds: float = 0.0


NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "NoSuchEntity", "NotFoundException", "404", "NoSuchKey", "NoSuchBucket"}
)


def _not_found(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in NOT_FOUND_CODES


def _call_or_none(fn: Callable[..., Any], **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return fn(**kwargs)
    except ClientError as e:
        if _not_found(e):
            return None
        raise


def _same_document(a: Any, b: Any) -> bool:
    """Two policy documents are equal (boto3 returns them decoded, or URL-encoded JSON on some servers)."""
    from urllib.parse import unquote

    def norm(doc: Any) -> Any:
        if isinstance(doc, str):
            try:
                doc = json.loads(unquote(doc))
            except ValueError:
                return doc
        return json.loads(json.dumps(doc, sort_keys=True))

    return bool(norm(a) == norm(b))


# ---------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------
def _ensure_code(s3: Any, spec: LambdaSpec, zip_path: Path, code_sha256: str, changed: list[str]) -> None:
    if _call_or_none(s3.head_bucket, Bucket=spec.code_bucket) is None:
        s3.create_bucket(Bucket=spec.code_bucket)
        changed.append(f"s3 bucket {spec.code_bucket}")
    head = _call_or_none(s3.head_object, Bucket=spec.code_bucket, Key=spec.code_key)
    if head is None or head.get("Metadata", {}).get(CODE_SHA256_METADATA) != code_sha256:
        s3.upload_file(
            str(zip_path), spec.code_bucket, spec.code_key, ExtraArgs={"Metadata": {CODE_SHA256_METADATA: code_sha256}}
        )
        changed.append(f"s3 object {spec.code_bucket}/{spec.code_key}")


def _ensure_role(iam: Any, spec: LambdaSpec, changed: list[str]) -> str:
    role = _call_or_none(iam.get_role, RoleName=spec.role_name)
    if role is None:
        arn = iam.create_role(RoleName=spec.role_name, AssumeRolePolicyDocument=spec.assume_role_policy_json())["Role"][
            "Arn"
        ]
        changed.append(f"iam role {spec.role_name}")
    else:
        arn = role["Role"]["Arn"]
        if not _same_document(role["Role"].get("AssumeRolePolicyDocument"), spec.assume_role_policy):
            iam.update_assume_role_policy(RoleName=spec.role_name, PolicyDocument=spec.assume_role_policy_json())
            changed.append(f"iam role {spec.role_name} trust policy")
    existing = set(iam.list_role_policies(RoleName=spec.role_name).get("PolicyNames", []))
    for name, document in spec.inline_policies.items():
        current = (
            _call_or_none(iam.get_role_policy, RoleName=spec.role_name, PolicyName=name) if name in existing else None
        )
        if current is None or not _same_document(current.get("PolicyDocument"), document):
            iam.put_role_policy(RoleName=spec.role_name, PolicyName=name, PolicyDocument=spec.policy_json(name))
            changed.append(f"iam policy {spec.role_name}/{name}")
    for name in sorted(existing - set(spec.inline_policies)):
        iam.delete_role_policy(RoleName=spec.role_name, PolicyName=name)
        changed.append(f"iam policy {spec.role_name}/{name} removed")
    return str(arn)


def _function_settings(spec: LambdaSpec, role_arn: str, environment: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {param: getattr(spec, name) for name, param in FUNCTION_PARAMETERS.items()}
    settings["Role"] = role_arn
    settings["Environment"] = {"Variables": dict(environment)}
    return settings


def wait_for_function(lam: Any, function_name: str, waiter: str, timeout: float) -> dict[str, Any]:
    """Wait (boto3 waiter ``function_active_v2``/``function_updated_v2``) and return the function's configuration.

    Raises :class:`DeployError` with the function's state and reason unless it is Active and its last
    update succeeded.
    """
    from botocore.exceptions import WaiterError

    attempts = max(1, int(timeout / 0.25))
    with contextlib.suppress(WaiterError):  # reported below with the function's state and reason
        lam.get_waiter(waiter).wait(FunctionName=function_name, WaiterConfig={"Delay": 0.25, "MaxAttempts": attempts})
    config: dict[str, Any] = lam.get_function_configuration(FunctionName=function_name)
    if config.get("State") != "Active" or config.get("LastUpdateStatus") not in (None, "Successful"):
        raise DeployError(
            f"function {function_name} is {config.get('State')} (last update "
            f"{config.get('LastUpdateStatus')}): {config.get('StateReason') or config.get('LastUpdateStatusReason')}"
        )
    return config


def _ensure_function(
    lam: Any,
    spec: LambdaSpec,
    role_arn: str,
    environment: Mapping[str, str],
    code_sha256: str,
    changed: list[str],
    timeout: float,
) -> dict[str, Any]:
    wanted = _function_settings(spec, role_arn, environment)
    code = {"S3Bucket": spec.code_bucket, "S3Key": spec.code_key}
    current = _call_or_none(lam.get_function_configuration, FunctionName=spec.function_name)
    if current is None:
        lam.create_function(
            **wanted,
            Code=code,
            Architectures=list(spec.architectures),
            Publish=False,
            Tags={CUSTOM_ID_TAG: custom_ids(spec)["function_url"]},
        )
        changed.append(f"lambda function {spec.function_name}")
        return wait_for_function(lam, spec.function_name, "function_active_v2", timeout)
    if current.get("State") == "Failed":  # e.g. created while the runtime's interpreter was missing
        raise DeployError(f"function {spec.function_name} is Failed: {current.get('StateReason')}")
    if current.get("CodeSha256") != code_sha256 or list(current.get("Architectures") or []) != list(spec.architectures):
        lam.update_function_code(FunctionName=spec.function_name, **code, Architectures=list(spec.architectures))
        changed.append(f"lambda function {spec.function_name} code")
        current = wait_for_function(lam, spec.function_name, "function_updated_v2", timeout)
    # The same keys as ``wanted`` (FUNCTION_PARAMETERS, Role, Environment), read back from the function.
    have = {key: current.get(key) for key in wanted}
    have["Environment"] = {"Variables": (current.get("Environment") or {}).get("Variables") or {}}
    if have != wanted:
        lam.update_function_configuration(**wanted)
        differing = sorted(k for k in wanted if have.get(k) != wanted[k])
        changed.append(f"lambda function {spec.function_name} configuration ({', '.join(differing)})")
        current = wait_for_function(lam, spec.function_name, "function_updated_v2", timeout)
    return current


def _ensure_concurrency(lam: Any, spec: LambdaSpec, changed: list[str]) -> None:
    current = _call_or_none(lam.get_function_concurrency, FunctionName=spec.function_name) or {}
    if current.get("ReservedConcurrentExecutions") != spec.reserved_concurrency:
        lam.put_function_concurrency(
            FunctionName=spec.function_name, ReservedConcurrentExecutions=spec.reserved_concurrency
        )
        changed.append(f"lambda function {spec.function_name} reserved concurrency {spec.reserved_concurrency}")


def _statement_ids(lam: Any, spec: LambdaSpec) -> dict[str, dict[str, Any]]:
    policy = _call_or_none(lam.get_policy, FunctionName=spec.function_name)
    if policy is None:
        return {}
    return {s.get("Sid", ""): s for s in json.loads(policy["Policy"]).get("Statement", [])}


def _ensure_permission(lam: Any, spec: LambdaSpec, sid: str, changed: list[str], **kwargs: Any) -> None:
    statements = _statement_ids(lam, spec)
    if sid in statements:
        source_arn = kwargs.get("SourceArn")
        condition = json.dumps(statements[sid].get("Condition", {}))
        if source_arn is None or source_arn in condition:
            return
        lam.remove_permission(FunctionName=spec.function_name, StatementId=sid)
    lam.add_permission(FunctionName=spec.function_name, StatementId=sid, **kwargs)
    changed.append(f"lambda permission {sid}")


def _ensure_function_url(lam: Any, spec: LambdaSpec, changed: list[str]) -> str:
    config = _call_or_none(lam.get_function_url_config, FunctionName=spec.function_name)
    if config is None:
        config = lam.create_function_url_config(FunctionName=spec.function_name, AuthType=spec.function_url_auth_type)
        changed.append(f"function url of {spec.function_name}")
    elif config.get("AuthType") != spec.function_url_auth_type:
        config = lam.update_function_url_config(FunctionName=spec.function_name, AuthType=spec.function_url_auth_type)
        changed.append(f"function url of {spec.function_name} auth type")
    _ensure_permission(
        lam,
        spec,
        URL_PERMISSION_SID,
        changed,
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType=spec.function_url_auth_type,
    )
    return str(config["FunctionUrl"])


def _find_rest_api(apigw: Any, spec: LambdaSpec) -> dict[str, Any] | None:
    for page in apigw.get_paginator("get_rest_apis").paginate():
        for api in page.get("items", []):
            if api.get("name") == spec.rest_api_name:
                return dict(api)
    return None


def _ensure_rest_api(apigw: Any, lam: Any, spec: LambdaSpec, region: str, function_arn: str, changed: list[str]) -> str:
    api = _find_rest_api(apigw, spec)
    routes_changed = False
    if api is None:
        api = apigw.create_rest_api(name=spec.rest_api_name, tags={CUSTOM_ID_TAG: custom_ids(spec)["rest_api"]})
        changed.append(f"rest api {spec.rest_api_name}")
        routes_changed = True
    api_id = str(api["id"])
    resources = [r for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id) for r in page["items"]]
    root = next(r for r in resources if r["path"] == "/")
    proxy = next((r for r in resources if r.get("pathPart") == "{proxy+}" and r.get("parentId") == root["id"]), None)
    if proxy is None:
        proxy = apigw.create_resource(restApiId=api_id, parentId=root["id"], pathPart="{proxy+}")
        changed.append(f"rest api resource {{proxy+}} of {spec.rest_api_name}")
        routes_changed = True
    uri = invoke_arn(region, function_arn)
    for resource in (root, proxy):
        rid = resource["id"]
        if _call_or_none(apigw.get_method, restApiId=api_id, resourceId=rid, httpMethod="ANY") is None:
            apigw.put_method(restApiId=api_id, resourceId=rid, httpMethod="ANY", authorizationType="NONE")
            routes_changed = True
        integration = _call_or_none(apigw.get_integration, restApiId=api_id, resourceId=rid, httpMethod="ANY")
        if (
            integration is None
            or integration.get("type") != "AWS_PROXY"
            or integration.get("uri") != uri
            or integration.get("httpMethod") != "POST"
        ):
            apigw.put_integration(
                restApiId=api_id,
                resourceId=rid,
                httpMethod="ANY",
                type="AWS_PROXY",
                integrationHttpMethod="POST",
                uri=uri,
            )
            changed.append(f"rest api integration ANY {resource.get('path', '/')}")
            routes_changed = True
    stage = _call_or_none(apigw.get_stage, restApiId=api_id, stageName=spec.stage_name)
    if routes_changed or stage is None:
        apigw.create_deployment(restApiId=api_id, stageName=spec.stage_name)
        changed.append(f"rest api deployment to stage {spec.stage_name}")
    _ensure_permission(
        lam,
        spec,
        REST_PERMISSION_SID,
        changed,
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=spec.rest_api_source_arn(region, api_id),
    )
    return api_id


# ---------------------------------------------------------------------------------------------------------
# Public
# ---------------------------------------------------------------------------------------------------------
def deploy(
    endpoint: str,
    environment: Mapping[str, str],
    *,
    spec: LambdaSpec = LAMBDA,
    zip_path: Path | None = None,
    code_sha256: str | None = None,
    region: str = catalog.REGION,
    timeout: float = 180.0,
    out: Callable[[str], None] | None = None,
) -> DeployResult:
    """Create or update every resource of ``spec`` in the LocalStack at ``endpoint`` (idempotent).

    ``environment`` is the function's environment (:func:`infra.aws_lambda.spec.function_environment`).
    ``zip_path`` defaults to the spec's zip (build it first, e.g. with
    :func:`infra.aws_lambda.package_cache.ensure_zip`, which also gives ``code_sha256``). ``timeout`` bounds
    the wait for the function to become active. Raises :class:`DeployError` (or botocore's errors).
    """
    say = out or (lambda _msg: None)
    t0 = time.monotonic()
    package = zip_path or spec.require_zip()
    digest = code_sha256 or source_code_hash(package)
    changed: list[str] = []
    s3, iam, lam, apigw = (aws_client(s, endpoint, region) for s in ("s3", "iam", "lambda", "apigateway"))
    _ensure_code(s3, spec, package, digest, changed)
    role_arn = _ensure_role(iam, spec, changed)
    config = _ensure_function(lam, spec, role_arn, environment, digest, changed, timeout)
    _ensure_concurrency(lam, spec, changed)
    function_arn = str(config["FunctionArn"])
    function_url = _ensure_function_url(lam, spec, changed)
    rest_api_id = _ensure_rest_api(apigw, lam, spec, region, function_arn, changed)
    elapsed = time.monotonic() - t0
    say(f"lambda {spec.function_name}: {', '.join(changed) if changed else 'up to date'} ({elapsed:.1f} s)")
    endpoints = lambda_endpoints(endpoint, spec, function_arn, function_url, rest_api_id)
    return DeployResult(endpoints, digest, changed, elapsed)


def find_endpoints(endpoint: str, spec: LambdaSpec = LAMBDA, region: str = catalog.REGION) -> LambdaEndpoints | None:
    """The endpoints of the deployed function, read back from LocalStack; None if anything is missing."""
    lam = aws_client("lambda", endpoint, region, timeout=10)
    apigw = aws_client("apigateway", endpoint, region, timeout=10)
    config = _call_or_none(lam.get_function_configuration, FunctionName=spec.function_name)
    url = _call_or_none(lam.get_function_url_config, FunctionName=spec.function_name) if config else None
    api = _find_rest_api(apigw, spec) if url else None
    if not (config and url and api):
        return None
    return lambda_endpoints(endpoint, spec, str(config["FunctionArn"]), str(url["FunctionUrl"]), str(api["id"]))
