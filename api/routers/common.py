"""Helpers shared by the routers: the current bundle (or the 503 that explains how to get one)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from api.bundle import ModelBundle
from api.errors import json_response
from api.middleware import MODEL_VERSION_KEY
from api.model_store import ModelStore


def store_of(request: Request) -> ModelStore:
    """The app's model store."""
    store: ModelStore = request.app.state.store
    return store


def no_model_response(store: ModelStore) -> Response:
    """503: no model is loaded; says why (the last error) and how to produce one."""
    status = store.status
    settings = store.settings
    why = status.last_error or "the service has not checked the registry yet"
    return json_response(
        {
            "detail": f"No model is being served: {why}",
            "hint": (
                f"Register a version of model {settings.model_name!r} and give it the alias "
                f"{settings.model_alias!r}: {settings.setup_hint}. The service picks it up within "
                f"{settings.retry_interval_s:g} s (or POST /model/reload)."
            ),
        },
        503,
        headers={"Retry-After": str(max(1, round(settings.retry_interval_s)))},
    )


def current_bundle(request: Request) -> ModelBundle | Response:
    """The bundle to use for this request (noted in the request's log line), or the 503 answer."""
    store = store_of(request)
    bundle = store.bundle
    if bundle is None:
        return no_model_response(store)
    request.scope[MODEL_VERSION_KEY] = bundle.ref.version
    return bundle
