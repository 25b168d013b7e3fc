"""Realistic Lambda events for the four HTTP integrations (shapes from the AWS documentation) and a context."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
EVENT_KINDS = ("rest_v1", "http_v2", "function_url", "alb")


def _encode(body: Any, base64_body: bool) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded``: text as is, bytes as given, anything else as JSON."""
    if body is None:
        return None, False
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    if base64_body:
        return base64.b64encode(raw).decode(), True
    return raw.decode(), False


def _merge(defaults: dict[str, str], headers: dict[str, str | None] | None, lower: bool) -> dict[str, str]:
    """``defaults`` updated with ``headers`` (names compared case-insensitively); None removes a header."""
    merged: dict[str, str | None] = dict(defaults)
    for key, value in (headers or {}).items():
        for existing in [k for k in merged if k.lower() == key.lower()]:
            del merged[existing]
        merged[key.lower() if lower else key] = value
    return {k: v for k, v in merged.items() if v is not None}


def rest_v1(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
    stage: str = "prod",
) -> dict[str, Any]:
    """API Gateway REST API (payload 1.0), proxy integration on ``/{proxy+}`` of ``stage``.

    As AWS (and LocalStack, also for its ``/restapis/<id>/<stage>/_user_request_/...`` URLs) sends it: ``path``
    without the stage, ``requestContext.path`` with it; the client's URL had ``/<stage>`` before the path.
    """
    api_id = "a1b2c3d4e5"
    hdrs = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Host": f"{api_id}.execute-api.{REGION}.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "X-Forwarded-For": "203.0.113.10",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    hdrs = _merge(hdrs, headers, lower=False)
    text, is_b64 = _encode(body, base64_body)
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": hdrs, "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl", "resourcePath": "/{proxy+}", "httpMethod": method,
            "extendedRequestId": "JJbxmHc-IAMF-8w=", "requestTime": "26/Nov/2026:16:30:00 +0000",
            "path": f"/{stage}{path}", "accountId": ACCOUNT, "protocol": "HTTP/1.1", "stage": stage,
            "domainPrefix": api_id, "requestTimeEpoch": int(time.time() * 1000), "requestId": str(uuid.uuid4()),
            "identity": {"cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
                         "sourceIp": "203.0.113.10", "principalOrgId": None, "accessKey": None,
                         "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
                         "userAgent": "curl/8.5.0", "user": None},
            "domainName": f"{api_id}.execute-api.{REGION}.amazonaws.com", "apiId": api_id,
        },
        "body": text, "isBase64Encoded": is_b64,
    }  # fmt: skip


def http_v2(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
    domain: str | None = None,
    api_id: str = "r3pmxmplak",
) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0), ``$default`` route and stage."""
    domain = domain or f"{api_id}.execute-api.{REGION}.amazonaws.com"
    hdrs = {
        "accept": "*/*",
        "content-type": "application/json",
        "host": domain,
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    hdrs = _merge(hdrs, headers, lower=True)
    text, is_b64 = _encode(body, base64_body)
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": raw_query,
        "headers": hdrs,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": api_id, "domainName": domain, "domainPrefix": domain.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                     "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": "$default",
            "time": "26/Nov/2026:16:30:00 +0000", "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": is_b64,
    }  # fmt: skip
    if query:
        event["queryStringParameters"] = query
    if text is not None:
        event["body"] = text
    return event


def function_url(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = True,
) -> dict[str, Any]:
    """Lambda Function URL (payload 2.0; bodies often arrive base64-encoded)."""
    url_id = "abcdefghijklmnopqrstuvwxyz012345"
    event = http_v2(method, path, body, headers, query, base64_body,
                    domain=f"{url_id}.lambda-url.{REGION}.on.aws", api_id=url_id)  # fmt: skip
    event["requestContext"]["authorizer"] = None
    del event["requestContext"]["authorizer"]
    return event


def alb(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """Application Load Balancer target group (multi-value headers off)."""
    hdrs = {
        "accept": "*/*",
        "content-type": "application/json",
        "host": f"lambda-alb-123578498.{REGION}.elb.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "80",
        "x-forwarded-proto": "http",
    }
    hdrs = _merge(hdrs, headers, lower=True)
    text, is_b64 = _encode(body, base64_body)
    return {
        "requestContext": {"elb": {"targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:"
                                                     "targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"}},
        "httpMethod": method, "path": path, "queryStringParameters": query or {}, "headers": hdrs,
        "body": text or "", "isBase64Encoded": is_b64,
    }  # fmt: skip


BUILDERS = {"rest_v1": rest_v1, "http_v2": http_v2, "function_url": function_url, "alb": alb}


def event(kind: str, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
    """An event of ``kind`` (one of :data:`EVENT_KINDS`)."""
    return BUILDERS[kind](method, path, body, **kwargs)


@dataclass
class LambdaContext:
    """The attributes of the context object Lambda passes to a handler."""

    function_name: str = "mlops-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/mlops-api"
    log_stream_name: str = "2026/11/26/[$LATEST]abcdef"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-api"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def response_body(response: dict[str, Any]) -> Any:
    """Decode a Lambda HTTP response's body as JSON (base64 or not)."""
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """Single-value headers of a Lambda HTTP response, lower-cased (from ``headers`` or ``multiValueHeaders``)."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), values[-1])
    return headers
