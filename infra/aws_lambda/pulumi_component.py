"""The prediction API as a Lambda in LocalStack: package, role, function, Function URL and API Gateway.

Every name, document and setting comes from :mod:`infra.aws_lambda.spec` (shared with the boto3
deployer). All AWS resources use one explicit provider whose every endpoint is LocalStack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pulumi
import pulumi_aws as aws

from infra import catalog
from infra.aws_lambda.spec import (
    LAMBDA,
    LOCALSTACK_ACCESS_KEY,
    LOCALSTACK_SECRET_KEY,
    LambdaSpec,
    function_environment,
    localstack_rest_url,
    source_code_hash,
)

if TYPE_CHECKING:  # infra.components imports this module: its names are imported where used
    from infra.components.common import StackContext

# Services the program calls, each pointed at LocalStack (keys of aws.ProviderEndpointArgs).
ENDPOINT_SERVICES = ("s3", "iam", "sts", "lambda_", "apigateway", "apigatewayv2")


def localstack_provider(name: str, endpoint: str, opts: pulumi.ResourceOptions) -> aws.Provider:
    """An AWS provider that can only reach LocalStack (no account lookup, no metadata API, path-style S3)."""
    return aws.Provider(
        name,
        region=catalog.REGION,
        access_key=LOCALSTACK_ACCESS_KEY,
        secret_key=LOCALSTACK_SECRET_KEY,
        skip_credentials_validation=True,
        skip_requesting_account_id=True,
        skip_metadata_api_check=True,
        skip_region_validation=True,
        s3_use_path_style=True,
        endpoints=[aws.ProviderEndpointArgs(**dict.fromkeys(ENDPOINT_SERVICES, endpoint))],
        opts=opts,
    )


def on_published_port(function_url: str, endpoint: str) -> str:
    """A Function URL as reachable from the host, on the published port of ``endpoint``.

    LocalStack reports its container port (4566) in Function URLs whatever ``LOCALSTACK_HOST`` says. URLs
    without a port (real AWS: ``https://<id>.lambda-url.<region>.on.aws/``) are returned unchanged.
    """
    url = urlsplit(function_url)
    if url.port is None:
        return function_url
    port = urlsplit(endpoint).port
    return urlunsplit(url._replace(netloc=f"{url.hostname}:{port}")) if port else function_url


class LambdaApi(pulumi.ComponentResource):
    """The FastAPI app through Mangum, fronted by a Function URL, a REST API (v1) and optionally an HTTP API.

    Built in four steps, one method each: the code package in S3 (:meth:`_package`), the execution role
    (:meth:`_role`), the function and its Function URL (:meth:`_function`), and the API Gateway fronts
    (:meth:`_rest_api`, :meth:`_http_api`).
    """

    provider: aws.Provider
    function: aws.lambda_.Function
    function_url: aws.lambda_.FunctionUrl
    public_function_url: pulumi.Output[str]  # the Function URL on the published LocalStack port
    rest_api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    rest_url: pulumi.Output[str]
    http_api: aws.apigatewayv2.Api | None

    def __init__(
        self,
        name: str,
        ctx: StackContext,
        localstack: pulumi.Resource,
        endpoint: str,
        extra_dependencies: Sequence[pulumi.Resource] = (),
        spec: LambdaSpec = LAMBDA,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        from infra.components.common import TYPE_PREFIX

        super().__init__(f"{TYPE_PREFIX}:LambdaApi", name, None, opts)
        package = ctx.config.lambda_zip
        if not package.is_file():
            # Fails preview and up before anything is changed.
            raise pulumi.RunError(
                f"Lambda package {package} does not exist: run `make lambda-zip` first, or deploy without the "
                "Lambda: `pulumi config set --path mlops-platform:localstack.deployLambda false`."
            )
        self._name, self._spec = name, spec
        deps: list[pulumi.Resource] = [localstack, *extra_dependencies]
        self.provider = localstack_provider(
            f"{name}-localstack", endpoint, pulumi.ResourceOptions(parent=self, depends_on=deps)
        )
        self._child = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=deps)

        bucket, package_object = self._package(package)
        role, policies = self._role()
        self._function(ctx, package, bucket, package_object, role, policies)
        self.public_function_url = self.function_url.function_url.apply(lambda u: on_published_port(u, endpoint))
        self._rest_api(endpoint)
        self.http_api = self._http_api() if ctx.config.localstack.http_api else None
        self.register_outputs({"function": self.function.name, "rest_url": self.rest_url})

    def _opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options of a child resource: this component, the LocalStack provider, extra dependencies."""
        if not depends_on:
            return self._child
        return pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=list(depends_on)))

    def _package(self, package: Path) -> tuple[aws.s3.Bucket, aws.s3.BucketObjectv2]:
        """The zip in S3 (the direct-upload limit is 50 MB)."""
        name, spec = self._name, self._spec
        bucket = aws.s3.Bucket(f"{name}-code", bucket=spec.code_bucket, force_destroy=True, opts=self._opts())
        package_object = aws.s3.BucketObjectv2(
            f"{name}-package",
            bucket=bucket.id,
            key=spec.code_key,
            source=pulumi.FileAsset(str(package)),
            opts=self._opts(),
        )
        return bucket, package_object

    def _role(self) -> tuple[aws.iam.Role, list[aws.iam.RolePolicy]]:
        """The execution role with the spec's inline policies."""
        name, spec = self._name, self._spec
        role = aws.iam.Role(
            f"{name}-role", name=spec.role_name, assume_role_policy=spec.assume_role_policy_json(), opts=self._opts()
        )
        policies = [
            aws.iam.RolePolicy(f"{name}-{p}", name=p, role=role.id, policy=spec.policy_json(p), opts=self._opts())
            for p in spec.inline_policies
        ]
        return role, policies

    def _function(
        self,
        ctx: StackContext,
        package: Path,
        bucket: aws.s3.Bucket,
        package_object: aws.s3.BucketObjectv2,
        role: aws.iam.Role,
        policies: list[aws.iam.RolePolicy],
    ) -> None:
        """The function (code from S3, the API's environment) and its public Function URL."""
        name, spec = self._name, self._spec
        settings = ctx.config.ml_settings()
        variables: pulumi.Output[dict[str, str]] = pulumi.Output.secret(
            ctx.creds.apply(lambda c: function_environment(c, settings, ctx.topo))
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=spec.function_name,
            role=role.arn,
            handler=spec.handler,
            runtime=spec.runtime,
            architectures=list(spec.architectures),
            memory_size=spec.memory_mb,
            timeout=spec.timeout_s,
            reserved_concurrent_executions=spec.reserved_concurrency,
            s3_bucket=bucket.id,
            s3_key=package_object.key,
            source_code_hash=source_code_hash(package),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=variables),
            opts=self._opts(package_object, *policies),
        )
        # Function URL (public, like the container API).
        self.function_url = aws.lambda_.FunctionUrl(
            f"{name}-url",
            function_name=self.function.name,
            authorization_type=spec.function_url_auth_type,
            opts=self._opts(),
        )
        aws.lambda_.Permission(
            f"{name}-url-invoke",
            action="lambda:InvokeFunctionUrl",
            function=self.function.name,
            principal="*",
            function_url_auth_type=spec.function_url_auth_type,
            opts=self._opts(),
        )

    def _rest_api(self, endpoint: str) -> None:
        """API Gateway REST API (v1): ``{proxy+}`` and the root, both ``ANY`` -> ``AWS_PROXY``, one stage."""
        name, spec = self._name, self._spec
        self.rest_api = aws.apigateway.RestApi(f"{name}-rest", name=spec.rest_api_name, opts=self._opts())
        proxy = aws.apigateway.Resource(
            f"{name}-proxy",
            rest_api=self.rest_api.id,
            parent_id=self.rest_api.root_resource_id,
            path_part="{proxy+}",
            opts=self._opts(),
        )
        integrations = []
        for suffix, resource_id in (("proxy", proxy.id), ("root", self.rest_api.root_resource_id)):
            method = aws.apigateway.Method(
                f"{name}-{suffix}-any",
                rest_api=self.rest_api.id,
                resource_id=resource_id,
                http_method="ANY",
                authorization="NONE",
                opts=self._opts(),
            )
            integrations.append(
                aws.apigateway.Integration(
                    f"{name}-{suffix}-lambda",
                    rest_api=self.rest_api.id,
                    resource_id=resource_id,
                    http_method=method.http_method,
                    type="AWS_PROXY",
                    integration_http_method="POST",
                    uri=self.function.invoke_arn,
                    opts=self._opts(),
                )
            )
        # Redeploy when the routes change.
        fingerprint = pulumi.Output.all(*(i.id for i in integrations), self.function.invoke_arn).apply(
            lambda parts: hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        )
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=self.rest_api.id,
            triggers={"routes": fingerprint},
            opts=self._opts(*integrations),
        )
        self.stage = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=self.rest_api.id,
            deployment=deployment.id,
            stage_name=spec.stage_name,
            opts=self._opts(),
        )
        aws.lambda_.Permission(
            f"{name}-rest-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=self.rest_api.id.apply(lambda api_id: spec.rest_api_source_arn(catalog.REGION, api_id)),
            opts=self._opts(),
        )
        self.rest_url = self.rest_api.id.apply(lambda api_id: localstack_rest_url(endpoint, api_id))

    def _http_api(self) -> aws.apigatewayv2.Api:
        """Optional API Gateway HTTP API (v2): quick-create with the function as target (LocalStack Pro, AWS)."""
        name, spec = self._name, self._spec
        http_api = aws.apigatewayv2.Api(
            f"{name}-http", name=spec.http_api_name, protocol_type="HTTP", target=self.function.arn, opts=self._opts()
        )
        aws.lambda_.Permission(
            f"{name}-http-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=http_api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=self._opts(),
        )
        return http_api
