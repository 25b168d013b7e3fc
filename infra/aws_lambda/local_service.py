"""The embedded stack's LocalStack service: host mode (no Docker) with the prediction API deployed as a Lambda.

* :func:`build` -- the supervised program: ``python -m localstack.runtime.main`` from LocalStack's own venv
  (Python 3.13, :mod:`.localstack_venvs`), on 127.0.0.1 at the stack's LocalStack port, its state under
  ``<state dir>/localstack``, Lambda functions run by the local-process executor on the runtime's venv
  (Python 3.12), their servers on the stack's block of Lambda ports. What ``up`` does besides starting it
  (zip, deployment, first requests) is :class:`~infra.aws_lambda.local_deployment.LambdaDeployment`.
* :func:`check` -- the service's health: LocalStack's ``GET /_localstack/health`` *and* a real request to
  the function (``GET /health`` through its Function URL). LocalStack silently falls back to its Docker
  executor when the plugin is missing; that fails here, with the reason.
* :func:`endpoints` -- the Function URL and the REST API (v1) stage, read back from LocalStack.
* :func:`write_ready_hook` -- LocalStack's ``ready.d`` init script that deploys the function again whenever
  LocalStack becomes ready outside ``up``: after supervisord restarted a crashed LocalStack, which forgets
  every resource, the Lambda comes back by itself (``python -m infra.local redeploy-lambda``, which runs
  :func:`~infra.aws_lambda.local_deployment.redeploy`).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from infra import catalog
from infra.aws_lambda.spec import LAMBDA, LambdaSpec
from infra.local.health import Health, http_get
from infra.local.layout import StatePaths
from infra.local.programs import BuildContext, LocalService, Program, launched
from infra.local.settings import REPO_ROOT, StackSettings

#: Path requested from the function to prove it runs (the API's liveness route: no model needed).
FUNCTION_PROBE_PATH = "/health"
#: Bound on one request to the function (a cold start loads the champion: a few seconds).
FUNCTION_TIMEOUT_S = 120.0
#: Variables of supervisord's (secret) environment that LocalStack must not see: it would take them for
#: its own AWS credentials. The function gets its own, from its configuration.
BLANKED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def gateway_url(topo: catalog.Topology) -> str:
    """LocalStack's gateway, ``http://127.0.0.1:<port>``."""
    return topo.url(catalog.LOCALSTACK)


#: Log of the deployments the ready hook starts (under the stack's log directory).
REDEPLOY_LOG = "localstack-redeploy"


def ready_hook_path(paths: StatePaths) -> Path:
    """LocalStack's ``ready.d`` script of this stack (under its FILESYSTEM_ROOT, see :mod:`.localstack_venvs`)."""
    from infra.aws_lambda.localstack_venvs import init_hook_dir

    return init_hook_dir(paths.root) / "mlops-redeploy.sh"


def settings_snapshot_path(paths: StatePaths) -> Path:
    """The stack settings the ready hook deploys with (ports and paths; nothing secret)."""
    return paths.localstack.resolve() / "stack-settings.json"


def write_ready_hook(paths: StatePaths, settings: StackSettings, python: str = sys.executable) -> Path:
    """Write the ``ready.d`` script that redeploys the Lambda each time LocalStack is ready; returns its path.

    LocalStack runs it after every start. It starts ``python -m infra.local redeploy-lambda`` in the
    background (LocalStack must not wait for a deployment into itself), in a clean environment, with a
    snapshot of ``settings`` (the user's ``MLOPS_STACK_*`` variables do not reach LocalStack). During ``up``
    the command sees the stack lock held and leaves the deployment to ``up``.
    """
    snapshot = settings_snapshot_path(paths)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.write_text(settings.model_dump_json(indent=2) + "\n")
    log = paths.log(REDEPLOY_LOG).resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        shlex.quote(a) for a in (python, "-m", "infra.local", "redeploy-lambda", "--settings-file", str(snapshot))
    )
    hook = ready_hook_path(paths)
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        "# Written by the embedded stack (infra/aws_lambda/local_service.py); LocalStack runs it when ready.\n"
        "# LocalStack keeps nothing across restarts: deploy the API's Lambda again, in the background.\n"
        f"cd {shlex.quote(str(REPO_ROOT))} || exit 0\n"
        # A clean environment: LocalStack's own (e.g. its NO_PROXY entries) breaks the HTTP clients.
        # PYTHONUNBUFFERED: the log shows each step as it happens, not all of them at exit.
        f'env -i PATH="$PATH" HOME="$HOME" LANG="${{LANG:-C.UTF-8}}" PYTHONUNBUFFERED=1 \\\n'
        f"  nohup {command} >>{shlex.quote(str(log))} 2>&1 </dev/null &\n"
        "exit 0\n"
    )
    hook.chmod(0o700)
    return hook


def build(ctx: BuildContext) -> LocalService:
    """LocalStack as a supervised program (its environments are created or updated first, see module doc)."""
    from infra.aws_lambda import localstack_venvs as lsvenv
    from infra.aws_lambda.localstack_endpoints import function_url_origins

    envs = ctx.settings.localstack_envs_dir
    try:
        venv = lsvenv.ensure_venv(envs)
        runtime_python = lsvenv.ensure_lambda_runtime(envs, LAMBDA.runtime)
    except RuntimeError as e:
        raise RuntimeError(
            f"LocalStack's environments in {envs} could not be prepared: {e}\n"
            "(run the stack without LocalStack: MLOPS_STACK_ENABLE_LOCALSTACK=0)"
        ) from e
    argv, env = lsvenv.localstack_command_and_env(
        venv,
        ctx.paths.root,
        ctx.topo.port(catalog.LOCALSTACK),
        lambda_pythons={LAMBDA.runtime: runtime_python},
        lambda_ports=ctx.settings.lambda_ports(),
        host=ctx.topo.bind_host,
        base_env={},  # supervisord provides PATH, HOME, LANG...
        extra_env={
            **dict.fromkeys(BLANKED_ENV, ""),
            "EXTRA_CORS_ALLOWED_ORIGINS": ",".join(function_url_origins(LAMBDA, ctx.topo.port(catalog.LOCALSTACK))),
        },
    )
    write_ready_hook(ctx.paths, ctx.settings)
    program = Program(
        catalog.LOCALSTACK,
        launched(argv),
        env=env,
        directory=ctx.paths.localstack,
        # The function runtimes are LocalStack's children in its process group: stop them with it.
        stopasgroup=True,
        stopwaitsecs=20,
        startsecs=2,
    )
    return LocalService(catalog.LOCALSTACK, program)


# ---------------------------------------------------------------------------------------------------------
# Requests to the function
# ---------------------------------------------------------------------------------------------------------
def request_function(
    endpoints: Any, method: str, path: str, timeout: float = FUNCTION_TIMEOUT_S, **kwargs: Any
) -> httpx.Response:
    """One HTTP request through the Function URL (to 127.0.0.1 with the URL's ``Host``: no DNS needed)."""
    url, headers = endpoints.function_url_request(path)
    headers = {**headers, **kwargs.pop("headers", {})}
    return httpx.request(method, url, headers=headers, timeout=timeout, **kwargs)


def _function_state(topo: catalog.Topology, spec: LambdaSpec) -> str:
    from infra.aws_lambda.localstack_endpoints import aws_client

    try:
        cfg = aws_client("lambda", gateway_url(topo), timeout=10).get_function_configuration(
            FunctionName=spec.function_name
        )
    except Exception as e:
        return f"state unknown ({type(e).__name__})"
    return f"state {cfg.get('State')} {cfg.get('StateReason') or ''}".strip()


#: What LocalStack logs when ``LAMBDA_RUNTIME_EXECUTOR`` names no installed plugin (it then uses Docker, which
#: fails here with an unrelated-looking reason, e.g. "Installation of lambda-runtime ... failed").
DOCKER_FALLBACK_LOG = 'Falling back to "docker" runtime executor'


def fell_back_to_docker(log_path: Path | None) -> bool:
    """Whether LocalStack's log (its last 1 MiB) says it fell back to its Docker executor."""
    if log_path is None:
        return False
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (1 << 20)))
            return DOCKER_FALLBACK_LOG.encode() in f.read()
    except OSError:
        return False


def explain_failure(detail: str, log_path: Path | None = None) -> str:
    """``detail``, plus the cause when LocalStack fell back to its Docker executor (by the detail or its log)."""
    if "docker" in detail.lower() or fell_back_to_docker(log_path):
        return (
            f"{detail} -- LocalStack fell back to its Docker executor: the local-process executor plugin "
            "(infra/aws_lambda/localstack_plugin) is not installed in LocalStack's venv or failed to load; "
            f"see {log_path or 'its log'}"
        )
    return detail


def probe_function(
    topo: catalog.Topology,
    endpoints: Any,
    spec: LambdaSpec = LAMBDA,
    timeout: float = FUNCTION_TIMEOUT_S,
    log_path: Path | None = None,
) -> Health:
    """``GET /health`` through the Function URL answers 200 ``{"status": "ok"}``."""
    t0 = time.perf_counter()
    try:
        r = request_function(endpoints, "GET", FUNCTION_PROBE_PATH, timeout=timeout)
    except httpx.HTTPError as e:
        return Health(False, explain_failure(f"{spec.function_name}: {type(e).__name__}: {e}", log_path))
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
        try:
            if r.json().get("status") == "ok":
                detail = f"{spec.function_name} answers GET {FUNCTION_PROBE_PATH} via its Function URL ({ms:.0f} ms)"
                return Health(True, detail)
        except ValueError:
            pass
    state = _function_state(topo, spec)
    return Health(
        False,
        explain_failure(
            f"{spec.function_name}: GET {FUNCTION_PROBE_PATH} via its Function URL -> {r.status_code} "
            f"{r.text[:200]!r}; function {state}",
            log_path,
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Health and endpoints
# ---------------------------------------------------------------------------------------------------------
def localstack_health(topo: catalog.Topology, timeout: float = 3.0) -> Health:
    """LocalStack's own health: ``GET /_localstack/health`` answers 200 and the services we use are up."""
    from infra.aws_lambda.localstack_venvs import HEALTH_PATH

    url = topo.url(catalog.LOCALSTACK, HEALTH_PATH)
    result, response = http_get(url, timeout)
    if response is None:
        return result if url in result.detail else Health(False, f"GET {url}: {result.detail}")
    try:
        doc = response.json()
    except ValueError as e:
        return Health(False, f"{url}: {type(e).__name__}: {e}")
    services = doc.get("services", {})
    wanted = ("s3", "iam", "lambda", "apigateway")
    down = {s: services.get(s) for s in wanted if services.get(s) not in ("available", "running")}
    if down:
        return Health(False, f"LocalStack {doc.get('version')}: service(s) not available: {down}")
    return Health(True, f"LocalStack {doc.get('version')} healthy")


def status(
    topo: catalog.Topology,
    spec: LambdaSpec = LAMBDA,
    timeout: float = FUNCTION_TIMEOUT_S,
    log_path: Path | None = None,
) -> tuple[Health, Any]:
    """``(health, endpoints or None)``: LocalStack's health and a real request to the deployed function.

    ``log_path`` (LocalStack's log) lets a failure name its cause when LocalStack fell back to Docker.
    """
    from infra.aws_lambda.localstack_deploy import find_endpoints

    own = localstack_health(topo)
    if not own.ok:
        return own, None
    try:
        eps = find_endpoints(gateway_url(topo), spec)
    except Exception as e:
        return Health(False, f"{own.detail}, but its Lambda API failed: {type(e).__name__}: {e}"), None
    if eps is None:
        return (
            Health(
                False,
                f"{own.detail}, but {spec.function_name} is not deployed (LocalStack keeps nothing across restarts): "
                "run `up` to deploy it",
            ),
            None,
        )
    probe = probe_function(topo, eps, spec, timeout, log_path)
    detail = f"{own.detail}; {probe.detail}"
    return Health(probe.ok, detail), eps


def check(topo: catalog.Topology) -> Health:
    """The LocalStack service's health check (see :func:`status`)."""
    return status(topo)[0]


def endpoints(topo: catalog.Topology, spec: LambdaSpec = LAMBDA) -> Any:
    """The deployed function's :class:`~infra.aws_lambda.localstack_endpoints.LambdaEndpoints`, or None."""
    from infra.aws_lambda.localstack_deploy import find_endpoints

    try:
        return find_endpoints(gateway_url(topo), spec)
    except Exception:
        return None


def client_endpoints(eps: Any) -> dict[str, dict[str, Any]]:
    """The two ways into the function, by name (``function_url``, ``rest_v1``), for any HTTP client.

    Each: ``url`` (the endpoint as AWS would show it), ``base_url`` + ``headers`` (what to send the API's paths
    to; the Function URL's goes to 127.0.0.1 with its ``Host`` header, so no name resolution is needed),
    ``predict_url`` (``base_url`` + ``/predict``) and ``curl`` (a ready-to-run ``POST /predict`` command with
    the endpoint's own URL: curl resolves ``*.localhost`` to 127.0.0.1 itself). ``rest_v1`` also gives
    ``alt_url``, LocalStack's newer path form of the same stage.
    """
    predict_url, headers = eps.function_url_request("/predict")
    body = "-H 'Content-Type: application/json' -d @request.json"
    return {
        "function_url": {
            "url": eps.function_url,
            "base_url": predict_url.removesuffix("/predict"),
            "headers": headers,
            "predict_url": predict_url,
            "curl": f"curl -X POST {eps.function_url.rstrip('/')}/predict {body}",
        },
        "rest_v1": {
            "url": eps.rest_url,
            "alt_url": eps.execute_api_url,
            "base_url": eps.rest_url,
            "headers": {},
            "predict_url": f"{eps.rest_url}/predict",
            "curl": f"curl -X POST {eps.rest_url}/predict {body}",
        },
    }


def describe_endpoints(eps: Any) -> dict[str, Any]:
    """The deployed function for ``status``: names, ARNs and :func:`client_endpoints`."""
    return {
        "function_name": eps.function_name,
        "function_arn": eps.function_arn,
        "rest_api_id": eps.rest_api_id,
        "stage": eps.stage,
        "gateway": eps.gateway,
        "endpoints": client_endpoints(eps),
    }


__all__ = [
    "BLANKED_ENV",
    "REDEPLOY_LOG",
    "build",
    "check",
    "client_endpoints",
    "describe_endpoints",
    "endpoints",
    "explain_failure",
    "fell_back_to_docker",
    "gateway_url",
    "localstack_health",
    "probe_function",
    "ready_hook_path",
    "request_function",
    "settings_snapshot_path",
    "status",
    "write_ready_hook",
]
