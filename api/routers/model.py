"""GET /model (what is served, how it was trained) and POST /model/reload (check the registry now).

The reload endpoint needs the admin key (``MLOPS_API_ADMIN_KEY``) as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``; without a configured key it is disabled (403).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from api.errors import json_response
from api.model_store import ModelStore, RefreshResult
from api.registry_client import ModelNotFoundError, RegistryUnavailableError
from api.routers.common import bundle_of, store_of
from api.schemas import ErrorResponse, ReloadResponse

router = APIRouter(tags=["model"])

_bearer = HTTPBearer(auto_error=False, description="The admin key (MLOPS_API_ADMIN_KEY) as a bearer token.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The admin key (MLOPS_API_ADMIN_KEY).")


class AdminKeyError(Exception):
    """The admin key is missing, wrong or not configured."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def require_admin(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    """Dependency: pass only with the configured admin key (compared in constant time).

    Every credential the request presents must be that key: an ``Authorization`` header of another scheme,
    or a wrong key in either header, is refused even when the other header is right.
    """
    expected = request.app.state.settings.admin_key
    if expected is None or not expected.get_secret_value():
        raise AdminKeyError(403, "model reload is disabled: set MLOPS_API_ADMIN_KEY to enable it")
    key = expected.get_secret_value().encode()
    presented: list[str | None] = []
    if "authorization" in request.headers:
        presented.append(bearer.credentials if bearer is not None else None)  # None: not "Bearer <key>"
    if "x-api-key" in request.headers:
        presented.append(api_key)  # None when empty
    if not presented or not all(given and secrets.compare_digest(given.encode(), key) for given in presented):
        raise AdminKeyError(401, "missing or wrong admin key (Authorization: Bearer <key> or X-API-Key: <key>)")


async def on_admin_key_error(_: Request, exc: Exception) -> Response:
    """Answer an :class:`AdminKeyError` (401 asks for a bearer token, as HTTP requires)."""
    assert isinstance(exc, AdminKeyError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response({"detail": exc.detail}, exc.status, headers)


def describe_model(request: Request, store: ModelStore, name: str | None = None) -> Response:
    """GET /model's answer for ``store``: the bundle's description and the registry's state (or the 503)."""
    bundle = bundle_of(request, store, name)
    if isinstance(bundle, Response):
        return bundle
    confirmed = store.confirmed_at
    registry = {
        **store.status.as_dict(),
        "confirmed_at": None if confirmed is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(confirmed)),
    }
    return json_response({**bundle.describe(), "registry": registry})


@router.get(
    "/model",
    summary="The default model",
    responses={503: {"model": ErrorResponse, "description": "No model is loaded."}},
)
async def model_info(request: Request) -> Response:
    """Name, version, alias, run and model ids, training metrics, data version and the feature spec.

    Also where the model was loaded from (``loaded_from``: the registry or the champion cache) and the
    registry's state (``registry``: ``reachable``, ``last_check``, ``unreachable_since``, ``last_error``).
    """
    return describe_model(request, store_of(request))


router.add_api_route("/model", model_info, methods=["HEAD"], include_in_schema=False)  # as GET, without the body


def _reload_status(result: RefreshResult) -> int:
    if result.outcome != "failed":
        return 200
    if isinstance(result.error, RegistryUnavailableError):
        return 503
    if isinstance(result.error, ModelNotFoundError):
        return 404
    return 409  # the registry answered with a model this service refuses to serve


async def reload_store(store: ModelStore, force: bool) -> Response:
    """Check ``store``'s alias now and answer how it went (POST /model/reload, POST /models/{name}/reload)."""
    result = await run_in_threadpool(store.refresh, force)
    served: dict[str, Any] | None = result.bundle.served if result.bundle is not None else None
    previous = result.previous.served if result.previous is not None else None
    body = {"outcome": result.outcome, "detail": result.detail, "model": served, "previous": previous}
    return json_response(body, _reload_status(result))


RELOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong admin key."},
    403: {"model": ErrorResponse, "description": "Reload is disabled (no MLOPS_API_ADMIN_KEY)."},
    404: {"model": ReloadResponse, "description": "No version holds the alias."},
    409: {"model": ReloadResponse, "description": "The new version is not servable; the old one stays."},
    503: {"model": ReloadResponse, "description": "MLflow or S3 is unreachable; the old model stays."},
}
ForceQuery = Annotated[bool, Query(description="Reload even if the alias still points at the served version.")]


@router.post(
    "/model/reload",
    summary="Check the registry now (default model)",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses=RELOAD_RESPONSES,
)
async def reload_model(request: Request, force: ForceQuery = False) -> Response:
    """Resolve the alias now and swap in its version if it changed (atomically; the old one stays on failure)."""
    return await reload_store(store_of(request), force)
