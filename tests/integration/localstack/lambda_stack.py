"""Helpers of the Lambda-on-the-stack tests: the session stack with a champion, and the function's endpoints.

The champion comes from ``trained_stack`` (tests/integration/conftest.py: both DAGs through Airflow, as
``make up`` does), shared with the pipeline tests, so the registry holds one real champion for the whole
session whichever tests run first. These tests skip only when the stack runs without LocalStack (no Python
3.13 or 3.12 here), with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infra import catalog
from infra.aws_lambda import local_service
from infra.aws_lambda.localstack_endpoints import LambdaEndpoints
from infra.local import Stack
from tests.support.waiting import wait_until

ENDPOINT_NAMES = ("function_url", "rest_v1")


@dataclass
class LambdaStack:
    """The session stack, its deployed function and the champion version both the API and the Lambda serve."""

    stack: Stack
    endpoints: LambdaEndpoints
    clients: dict[str, dict[str, Any]]  # Stack.lambda_endpoints()
    champion: str

    def call(self, endpoint: str, method: str, path: str, timeout: float = 120.0, **kwargs: Any) -> httpx.Response:
        """A request to the API's ``path`` through ``endpoint`` (``function_url`` or ``rest_v1``)."""
        target = self.clients[endpoint]
        headers = {**target["headers"], **kwargs.pop("headers", {})}
        return httpx.request(method, target["base_url"] + path, headers=headers, timeout=timeout, **kwargs)

    def process_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The same request to the API process (uvicorn) of the stack."""
        return httpx.request(method, self.stack.url(catalog.API, path), timeout=30, **kwargs)


def wait_for(check: Callable[[], bool], timeout: float, what: str | Callable[[], str], interval: float = 1.0) -> float:
    """Poll ``check`` until true (:func:`tests.support.waiting.wait_until`); returns the seconds it took.

    ``what`` names what was awaited; a callable is asked at the time of failure (e.g. for a log's tail).
    """
    started = time.monotonic()
    wait_until(check, timeout, interval, what)
    return time.monotonic() - started


def served_version(ls: LambdaStack, endpoint: str = "function_url") -> str | None:
    """The model version the Lambda serves (``GET /model``), None while it has none."""
    response = ls.call(endpoint, "GET", "/model")
    return str(response.json().get("version")) if response.status_code == 200 else None


def lambda_stack_of(trained_stack: tuple[Stack, Any]) -> LambdaStack:
    """The trained session stack with the Lambda deployed and serving the registry's champion."""
    stack, result = trained_stack
    if catalog.LOCALSTACK not in stack.services():
        reason = stack.settings.localstack_off_reason() or "switched off (MLOPS_STACK_ENABLE_LOCALSTACK)"
        pytest.skip(f"the stack runs without LocalStack: {reason}")
    stack.up()  # idempotent: redeploys the function if LocalStack lost it (it keeps nothing across restarts)
    eps = local_service.endpoints(stack.topology)
    assert eps is not None, "LocalStack runs but the function is not deployed"
    ls = LambdaStack(stack, eps, local_service.client_endpoints(eps), str(result.champion_version))
    # The function started (at `up`) before the champion existed; it loads it on a later invocation (the retry
    # while it has no model, or the alias check every MLOPS_API_POLL_INTERVAL_S).
    took = wait_for(lambda: served_version(ls) == ls.champion, 120, f"the Lambda to serve champion v{ls.champion}")
    print(f"Lambda serves champion v{ls.champion} after {took:.1f} s")
    return ls
