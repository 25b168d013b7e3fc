"""Reaching LocalStack and the function deployed in it: boto3 clients, the fixed ids, the endpoints.

:func:`aws_client` is a boto3 client with LocalStack's dummy keys; :data:`CUSTOM_ID_TAG` and
:func:`custom_ids` fix the ids of the Function URL and of the REST API, so the URLs that
:class:`LambdaEndpoints` describes (and :func:`function_url_origins` allows for browsers) stay the same across
LocalStack restarts. Used by the deployer (:mod:`.localstack_deploy`) and the embedded stack's service
(:mod:`.local_service`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from infra import catalog
from infra.aws_lambda.spec import LOCALSTACK_ACCESS_KEY, LOCALSTACK_SECRET_KEY, LambdaSpec, localstack_rest_url

#: LocalStack only: its ``_custom_id_`` tag fixes the id of the Function URL (``<id>.lambda-url...``) and of
#: the REST API (``/restapis/<id>/...``), which are random otherwise. LocalStack's community edition forgets
#: everything at a restart, so without it both URLs would change after every ``down``/``up``. AWS ignores
#: the tag (it is only a tag there); the Pulumi component does not set it (its URLs are random).
CUSTOM_ID_TAG = "_custom_id_"


def custom_ids(spec: LambdaSpec) -> dict[str, str]:
    """The fixed ids the deployer asks LocalStack for: ``function_url`` and ``rest_api`` (lowercase)."""
    return {"function_url": spec.function_name.lower(), "rest_api": spec.rest_api_name.lower()}


def function_url_origins(spec: LambdaSpec, port: int, region: str = catalog.REGION) -> list[str]:
    """The browser origins of the Function URL LocalStack gives the function on ``port`` (see :func:`custom_ids`).

    LocalStack answers 403 to any request whose ``Origin`` or ``Referer`` is not an allowed origin (its guard
    for its own API against cross-site requests), the function's own pages included: ``/docs`` loads its
    assets and ``openapi.json`` with the page's ``Referer``. The stack allows these origins
    (``EXTRA_CORS_ALLOWED_ORIGINS``) and no other.
    """
    url_id = custom_ids(spec)["function_url"]
    domains = ("localhost", "localhost.localstack.cloud")
    return [f"http://{url_id}.lambda-url.{region}.{domain}:{port}" for domain in domains]


def aws_client(service: str, endpoint: str, region: str = catalog.REGION, timeout: float = 120.0) -> Any:
    """A boto3 client for LocalStack at ``endpoint`` with LocalStack's dummy keys (never the stack's)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=LOCALSTACK_ACCESS_KEY,
        aws_secret_access_key=LOCALSTACK_SECRET_KEY,
        aws_session_token=None,
        config=Config(
            connect_timeout=10,
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def invoke_arn(region: str, function_arn: str) -> str:
    """The API Gateway integration URI that invokes ``function_arn`` (Pulumi's ``Function.invoke_arn``)."""
    return f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


@dataclass(frozen=True)
class LambdaEndpoints:
    """Where the deployed function answers, and how to reach it from this machine.

    ``function_url`` is what LocalStack reports: ``http://<url-id>.lambda-url.<region>.localhost:<port>/``.
    curl and browsers resolve ``*.localhost`` to 127.0.0.1 themselves; other clients send the request to
    ``function_url_local`` (``http://127.0.0.1:<port>/``) with the header ``Host: <function_url_host>``.
    ``rest_url`` (``.../restapis/<id>/<stage>/_user_request_``) and ``execute_api_url``
    (``.../_aws/execute-api/<id>/<stage>``) are two path forms of the REST API's stage on LocalStack's gateway;
    append the API's paths (``/predict``) to any of them.
    """

    gateway: str
    function_name: str
    function_arn: str
    function_url: str
    function_url_host: str
    function_url_local: str
    rest_api_id: str
    stage: str
    rest_url: str
    execute_api_url: str

    def function_url_request(self, path: str = "/") -> tuple[str, dict[str, str]]:
        """URL and headers of a request to the Function URL that needs no name resolution (any HTTP client)."""
        return self.function_url_local.rstrip("/") + "/" + path.lstrip("/"), {"Host": self.function_url_host}

    def curl_commands(self, path: str = "/predict") -> dict[str, str]:
        """Copy-paste curl commands for ``path`` through each endpoint."""
        p = "/" + path.lstrip("/")
        local = self.function_url_local.rstrip("/")
        return {
            "function_url": f"curl {self.function_url.rstrip('/')}{p}",
            "function_url_host_header": f"curl -H 'Host: {self.function_url_host}' {local}{p}",
            "rest_v1": f"curl {self.rest_url}{p}",
            "rest_v1_execute_api": f"curl {self.execute_api_url}{p}",
        }


def lambda_endpoints(
    endpoint: str, spec: LambdaSpec, function_arn: str, function_url: str, rest_api_id: str
) -> LambdaEndpoints:
    """The endpoints of a deployed function on the LocalStack gateway at ``endpoint``."""
    gateway = endpoint.rstrip("/")
    return LambdaEndpoints(
        gateway=gateway,
        function_name=spec.function_name,
        function_arn=function_arn,
        function_url=function_url,
        function_url_host=urlsplit(function_url).netloc,
        function_url_local=gateway + "/",
        rest_api_id=rest_api_id,
        stage=spec.stage_name,
        rest_url=localstack_rest_url(gateway, rest_api_id, spec.stage_name),
        execute_api_url=f"{gateway}/_aws/execute-api/{rest_api_id}/{spec.stage_name}",
    )
