"""GET /health (liveness), GET /ready (is a model loaded, from where) and GET /metrics (Prometheus)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.errors import json_response
from api.routers.common import fleet_of, store_of
from api.schemas import ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """Always 200 while the process serves HTTP (a model is not required: see /ready)."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model is loaded."}},
)
async def ready(request: Request) -> Response:
    """200 when the default model is loaded (even if the registry is unreachable now), else 503.

    Readiness follows the default model (``MLOPS_API_DEFAULT_MODEL``) alone: it is what the legacy routes
    serve, and a model that another team has not trained yet must not take the service out of a load
    balancer. ``models`` says, for every served model, whether it is loaded and which version.

    Says which version is served, where it was loaded from (``model.loaded_from.kind``: ``registry`` or
    ``cache``), when the registry last confirmed it, the registry's state and where the champion cache lives.
    """
    store = store_of(request)
    bundle = store.bundle
    status = store.status
    registry = status.as_dict()
    if bundle is None:
        message = f"no model loaded: {status.last_error or 'not checked yet'}; {store.settings.setup_hint}"
        model = None
    else:
        ref = bundle.ref
        origin = bundle.source_origin
        model = {
            **bundle.served,
            "model_id": ref.model_id,
            "run_id": ref.run_id,
            "artifact_uri": ref.artifact_uri,
            "loaded_at": bundle.describe()["loaded_at"],
            "loaded_from": origin.as_dict(),
            "registry_confirmed_at": _iso(store.confirmed_at),
        }
        if origin.kind == "cache":
            message = (
                f"serving {ref.name} version {ref.version} (@{ref.alias}) from the champion cache "
                f"{origin.location} (champion as of {model['loaded_from']['observed_at']})"
            )
            if store.confirmed_at is not None:
                message += f"; the registry confirmed it at {model['registry_confirmed_at']}"
        else:
            message = f"serving {ref.name} version {ref.version} (@{ref.alias}) loaded from {ref.artifact_uri}"
        if status.reachable is False:
            message += (
                f"; the registry is unreachable since {registry['unreachable_since']} "
                f"({status.last_error}): serving the model already loaded"
            )
        elif status.reachable is None:
            message += "; the registry has not answered yet"
        elif status.last_error:
            message += f"; last check: {status.last_error}"
    body = {
        "ready": bundle is not None,
        "message": message,
        "model": model,
        "registry": registry,
        "cache": store.cache.describe(),
        "models": _models(request),
    }
    return json_response(body, 200 if bundle is not None else 503)


def _models(request: Request) -> dict[str, dict[str, object]]:
    """Every served model: loaded or not, and its version."""
    out: dict[str, dict[str, object]] = {}
    for name, store in fleet_of(request).stores():
        bundle = store.bundle
        out[name] = {"ready": bundle is not None, "version": bundle.ref.version if bundle is not None else None}
    return out


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latencies, predictions per class and the served model version."""
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


# HEAD answers wherever GET does (uptime checks and load balancers use it), with the same status and headers and
# no body (see api.middleware); it is left out of the OpenAPI document, which lists each operation once.
for _path, _endpoint in (("/health", health), ("/ready", ready), ("/metrics", metrics)):
    router.add_api_route(_path, _endpoint, methods=["HEAD"], include_in_schema=False)
