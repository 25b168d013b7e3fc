"""Deploying the prediction API into the embedded stack's LocalStack: during ``up``, and again after a restart.

* :class:`LambdaDeployment` -- what ``up`` does besides starting LocalStack (:mod:`.local_service`): build
  the zip if it is stale (:mod:`.package_cache`; at once, while the other services start), deploy every
  resource of :mod:`.spec` with the boto3 deployer once LocalStack answers (:mod:`.localstack_deploy`;
  LocalStack's community edition keeps nothing across restarts, so this runs on every ``up``: a no-op when
  all is in place), then send the function its first requests through the Function URL (the cold starts).
* :func:`redeploy` -- what ``python -m infra.local redeploy-lambda`` runs (LocalStack's ``ready.d`` hook, see
  :func:`~infra.aws_lambda.local_service.write_ready_hook`): deploy again if the function is missing or does
  not answer.
* :func:`deploy_function` -- the boto3 deployer with this stack's configuration; :func:`warm_up`.

The function's environment is :func:`infra.aws_lambda.spec.function_environment`, the builder the Pulumi
component uses, with the stack's local :class:`~infra.catalog.Topology`: the function reaches MLflow and S3
on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from infra import catalog
from infra.aws_lambda.local_service import (
    FUNCTION_PROBE_PATH,
    FUNCTION_TIMEOUT_S,
    endpoints,
    explain_failure,
    gateway_url,
    localstack_health,
    probe_function,
    request_function,
)
from infra.aws_lambda.spec import LAMBDA, LambdaSpec, function_environment
from infra.local.health import Health


def warm_up(endpoints: Any, spec: LambdaSpec = LAMBDA, timeout: float = FUNCTION_TIMEOUT_S) -> int:
    """Start ``spec.warm_environments`` execution environments with concurrent ``GET /health`` requests.

    LocalStack, like Lambda, starts an environment for a request that finds all of them busy; requests
    sent at once each find the others starting. Returns how many answered 200.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> bool:
        try:
            return request_function(endpoints, "GET", FUNCTION_PROBE_PATH, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    with ThreadPoolExecutor(max_workers=spec.warm_environments) as pool:
        return sum(pool.map(one, range(spec.warm_environments)))


def deploy_function(
    topo: catalog.Topology,
    creds: catalog.Credentials,
    zip_path: Path,
    code_sha256: str | None = None,
    out: Callable[[str], None] | None = None,
    spec: LambdaSpec = LAMBDA,
) -> Any:
    """Create or update the function and its fronts with this stack's configuration (a ``DeployResult``).

    What both ``up`` and ``redeploy-lambda`` run: the boto3 deployer with the environment the Pulumi
    component also uses (:func:`~infra.aws_lambda.spec.function_environment`) and the local topology.
    """
    from infra.aws_lambda import localstack_deploy

    return localstack_deploy.deploy(
        gateway_url(topo),
        function_environment(creds, topo=topo),
        spec=spec,
        zip_path=zip_path,
        code_sha256=code_sha256,
        timeout=FUNCTION_TIMEOUT_S,
        out=out,
    )


def redeploy(
    topo: catalog.Topology,
    creds: catalog.Credentials,
    log_path: Path | None = None,
    out: Callable[[str], None] | None = None,
    spec: LambdaSpec = LAMBDA,
) -> str:
    """Deploy the function again if it is missing or does not answer, from the zip built last; what happened.

    Raises :class:`RuntimeError` when LocalStack does not answer, there is no zip, or the function does
    not answer once deployed.
    """
    if not localstack_health(topo).ok:
        raise RuntimeError(f"LocalStack does not answer at {gateway_url(topo)}; see {log_path}")
    eps = endpoints(topo, spec)
    if eps is not None and probe_function(topo, eps, spec, log_path=log_path).ok:
        return f"{spec.function_name} is deployed and answers"
    zip_path = spec.zip_file()
    if not zip_path.is_file():
        raise RuntimeError(f"no Lambda package at {zip_path}: run `up`, which builds and deploys it")
    result = deploy_function(topo, creds, zip_path, out=out, spec=spec)
    warm_up(result.endpoints, spec)
    probe = probe_function(topo, result.endpoints, spec, log_path=log_path)
    if not probe.ok:
        raise RuntimeError(f"{spec.function_name} redeployed, but: {probe.detail}")
    return f"{spec.function_name} redeployed ({len(result.changed)} change(s)); {probe.detail}"


# ---------------------------------------------------------------------------------------------------------
# Deployment during `up`
# ---------------------------------------------------------------------------------------------------------
class LambdaDeployment:
    """``up``'s Lambda job, on a thread: zip (at once), deploy (once LocalStack is ready), first request.

    :meth:`health` is the start-up gate of the LocalStack service: not ok while running, ok when the function
    answered its first request, and :attr:`failed` (with the reason) when a step failed.
    """

    def __init__(
        self,
        topo: catalog.Topology,
        creds: catalog.Credentials,
        out: Callable[[str], None],
        spec: LambdaSpec = LAMBDA,
        log_path: Path | None = None,
    ) -> None:
        self.topo = topo
        self.log_path = log_path
        self.creds = creds
        self.spec = spec
        self._out = out
        self._ready = threading.Event()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lambda-deployment", daemon=True)
        self.phase = "checking the zip"
        self.failed: str | None = None
        self.done = False
        self.timings: dict[str, float] = {}
        self.changed: list[str] = []

    def start(self) -> LambdaDeployment:
        """Start the job (the zip step begins at once)."""
        self._thread.start()
        return self

    def localstack_ready(self) -> None:
        """LocalStack answers: the job may deploy."""
        self._ready.set()

    def cancel(self) -> None:
        """Give up (``up`` failed elsewhere): the job stops before its next step."""
        self._cancel.set()
        self._ready.set()

    def health(self) -> Health:
        """Start-up gate: ok once deployed and answering."""
        if self.failed:
            return Health(False, self.failed)
        if self.done:
            t = self.timings
            return Health(
                True,
                f"{self.spec.function_name} deployed ({len(self.changed)} change(s), {t.get('deploy', 0):.1f} s); "
                f"first request via its Function URL in {t.get('first_request', 0):.1f} s",
            )
        return Health(False, f"Lambda: {self.phase}")

    def _run(self) -> None:
        from infra.aws_lambda import package_cache

        try:
            package = package_cache.ensure_zip(self.spec, out=self._out)
            self.phase = "waiting for LocalStack"
            self._ready.wait()
            if self._cancel.is_set():
                return
            self.phase = "deploying"
            t0 = time.monotonic()
            result = deploy_function(self.topo, self.creds, package.path, package.code_sha256, self._out, self.spec)
            self.timings["deploy"] = time.monotonic() - t0
            self.changed = result.changed
            if self._cancel.is_set():
                return
            self.phase = "first requests (cold starts)"
            t0 = time.monotonic()
            warm_up(result.endpoints, self.spec)
            probe = probe_function(self.topo, result.endpoints, self.spec, log_path=self.log_path)
            self.timings["first_request"] = time.monotonic() - t0
            if not probe.ok:
                self.failed = f"deployed, but the function does not answer: {probe.detail}"
                return
            self._out(f"lambda {self.spec.function_name}: first request {self.timings['first_request']:.1f} s")
            self.done = True
        except Exception as e:  # reported by the start-up gate with the service's log
            self.failed = explain_failure(f"{self.phase} failed: {type(e).__name__}: {e}", self.log_path)


__all__ = ["LambdaDeployment", "deploy_function", "redeploy", "warm_up"]
