"""Helpers shared by the routers: the model a request names (or the 404/503 that explains how to get one)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from api.bundle import ModelBundle
from api.errors import json_response
from api.middleware import MODEL_VERSION_KEY
from api.model_fleet import ModelFleet
from api.model_store import ModelStore
from api.registry_catalog import CatalogEntry


def fleet_of(request: Request) -> ModelFleet:
    """The app's model fleet."""
    fleet: ModelFleet = request.app.state.fleet
    return fleet


def store_of(request: Request) -> ModelStore:
    """The default model's store (the legacy routes' model)."""
    return fleet_of(request).default


def unknown_model_response(fleet: ModelFleet, name: str) -> Response:
    """404: no model of that name; lists the served ones and says how to add one."""
    names = fleet.names()
    return json_response(
        {
            "detail": f"No model named {name[:100]!r}. Served models: {', '.join(names) or 'none'}.",
            "hint": (
                "GET /models lists them. To serve a new one, add its dataset spec (ml/datasets/<name>.yaml) and "
                "trigger its ETL DAG (etl_<name>; training_<name> follows): the service finds the registered model "
                f"within {fleet.settings.poll_interval_s:g} s."
            ),
            "models": names,
        },
        404,
    )


def _gated_out(entry: CatalogEntry, name: str) -> tuple[str, str] | None:
    gate = entry.latest_gate
    if entry.champion_version is not None or gate is None or gate.decision == "promoted":
        return None
    detail = (
        f"Model {name!r} ({entry.registered_model}) has no champion: the registry gate rejected its latest "
        f"version {gate.version}: {gate.reason}"
    )
    hint = (
        f"Train a better model, or relax training.min_champion_score in ml/datasets/{name}.yaml and re-run the gate "
        f"on that version: `make gate ARGS={name}` (or `python -m ml gate {name}` with the training pipeline's "
        "MLflow login); the service picks the champion up on its next check "
        f"(or POST /models/{name}/reload)."
    )
    return detail, hint


def no_model_response(store: ModelStore, name: str | None = None, entry: CatalogEntry | None = None) -> Response:
    """503: no model is loaded; says why (the gate's reason, else the last error) and how to produce one."""
    status = store.status
    settings = store.settings
    retry = {"Retry-After": str(max(1, round(settings.retry_interval_s)))}
    gated = _gated_out(entry, name) if entry is not None and name is not None else None
    if gated is not None:
        return json_response({"detail": gated[0], "hint": gated[1]}, 503, headers=retry)
    why = status.last_error or "the service has not checked the registry yet"
    reload = f"POST /models/{name}/reload" if name is not None else "POST /model/reload"
    return json_response(
        {
            "detail": f"No model is being served{f' for {name!r}' if name else ''}: {why}",
            "hint": (
                f"Register a version of model {settings.model_name!r} and give it the alias "
                f"{settings.model_alias!r}: {settings.setup_hint}. The service picks it up within "
                f"{settings.retry_interval_s:g} s (or {reload})."
            ),
        },
        503,
        headers=retry,
    )


def bundle_of(request: Request, store: ModelStore, name: str | None = None) -> ModelBundle | Response:
    """The store's bundle for this request (noted in the request's log line), or the 503 answer."""
    bundle = store.bundle
    if bundle is None:
        entry = fleet_of(request).entry(name) if name is not None else None
        return no_model_response(store, name, entry)
    request.scope[MODEL_VERSION_KEY] = bundle.ref.version
    return bundle


def current_bundle(request: Request) -> ModelBundle | Response:
    """The default model's bundle for this request, or the 503 answer."""
    return bundle_of(request, store_of(request))


def named_store(request: Request, name: str) -> ModelStore | Response:
    """The store of model ``name`` (one dict read), or the 404 answer listing the served models."""
    fleet = fleet_of(request)
    store = fleet.get(name)
    return store if store is not None else unknown_model_response(fleet, name)
