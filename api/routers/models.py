"""The served models side by side: list them, describe, predict with and reload one by its name.

``GET /models``, ``GET /models/{name}``, ``POST /models/{name}/predict``, ``POST /models/{name}/predict/batch``
and ``POST /models/{name}/reload``.

``name`` is the dataset (spec) name, e.g. ``breast_cancer``, ``wine``, ``diabetes``. An unknown name answers
404 with the served names; a model without a champion answers 503 saying why (the registry gate's reason when
it rejected the latest version) and how to fix it. Predictions go through the same code as ``POST /predict``
(:func:`api.routers.predict.predict_one`), so limits, validation and error shapes are identical. The OpenAPI
document lists these operations once per model, under the model's own tag (see :mod:`api.openapi`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from api.errors import json_response
from api.model_fleet import ModelFleet
from api.model_store import ModelStore
from api.routers.common import bundle_of, fleet_of, named_store
from api.routers.model import RELOAD_RESPONSES, ForceQuery, describe_model, reload_store, require_admin
from api.routers.predict import ERRORS, predict_many, predict_one
from api.schemas import ErrorResponse, ModelList, ReloadResponse

router = APIRouter(tags=["models"])

NameParam = Annotated[str, Path(description="The model's dataset name (GET /models lists them).", max_length=200)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No model of that name; the body lists the served ones."}
}
# Operations the OpenAPI document lists once per model (api.openapi replaces each template by one path per model).
PER_MODEL_PATHS = ("/models/{name}/predict", "/models/{name}/predict/batch", "/models/{name}/reload")


def model_summary(fleet: ModelFleet, name: str, store: ModelStore) -> dict[str, Any]:
    """One model as GET /models lists it: identity, task, version, data version, metrics, status and links."""
    bundle, entry = store.bundle, fleet.entry(name)
    links = {
        "self": f"/models/{name}",
        "predict": f"/models/{name}/predict",
        "predict_batch": f"/models/{name}/predict/batch",
        "docs": f"/docs#/{name}",
    }
    summary: dict[str, Any] = {"name": name, "registered_model": store.settings.model_name, "links": links}
    if bundle is None:
        gate = entry.latest_gate if entry is not None and entry.champion_version is None else None
        status = "gated_out" if gate is not None and gate.decision == "rejected" else "unavailable"
        reason = gate.reason if status == "gated_out" and gate is not None else store.status.last_error
        return summary | {
            "task": entry.task if entry is not None else None,
            "title": None, "version": None, "alias": store.settings.model_alias, "data_version": None,
            "metrics": None, "status": status, "reason": reason or "not loaded yet",
        }  # fmt: skip
    meta = bundle.metadata
    return summary | {
        "task": bundle.task.value,
        "title": bundle.spec.title,
        "version": bundle.ref.version,
        "alias": bundle.ref.alias,
        "data_version": meta.data_version,
        "metrics": {"metric": meta.metric, "cv_score": meta.cv_score, "test": meta.test_metrics},
        "status": "serving",
        "reason": None,
        "target": bundle.target_description(),
        "loaded_from": bundle.source_origin.kind,
    }


@router.get("/models", summary="The served models", response_model=ModelList)
async def list_models(request: Request) -> Response:
    """Every model this service serves (the default first), with its task, version, metrics and status."""
    fleet = fleet_of(request)
    models = [model_summary(fleet, name, store) for name, store in fleet.stores()]
    return json_response({"default": fleet.default_name, "models": models, "discovery": fleet.discovery.as_dict()})


@router.get(
    "/models/{name}",
    summary="One served model",
    responses={**NOT_FOUND, 503: {"model": ErrorResponse, "description": "The model has no champion loaded."}},
)
async def model_info(request: Request, name: NameParam) -> Response:
    """Like GET /model, for the model ``name``: version, training metrics, data version, feature spec."""
    store = named_store(request, name)
    if isinstance(store, Response):
        return store
    return describe_model(request, store, name)


router.add_api_route("/models/{name}", model_info, methods=["HEAD"], include_in_schema=False)


# The predict routes read ``name`` from the path themselves: a declared path parameter costs FastAPI's
# parameter validation (~25 µs) per request, 10 % of a single-record prediction. The OpenAPI document lists one
# path per model (api.model_docs), so the template's parameter is not documented anyway.
@router.post("/models/{name}/predict", summary="Predict one record", responses={**NOT_FOUND, **ERRORS})
async def predict(request: Request) -> Response:
    """One record: a classifier's label, its probability and every class's; a regressor's value and unit."""
    name: str = request.path_params["name"]
    store = named_store(request, name)
    if isinstance(store, Response):
        return store
    return await predict_one(request, name, lambda: bundle_of(request, store, name), f"/models/{name}/predict/batch")


@router.post("/models/{name}/predict/batch", summary="Predict many records", responses={**NOT_FOUND, **ERRORS})
async def predict_batch(request: Request) -> Response:
    """``{"records": [...]}`` (1 to ``MLOPS_API_MAX_BATCH``): one prediction per record, in request order."""
    name: str = request.path_params["name"]
    store = named_store(request, name)
    if isinstance(store, Response):
        return store
    return await predict_many(request, name, lambda: bundle_of(request, store, name))


@router.post(
    "/models/{name}/reload",
    summary="Check the registry now",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses=RELOAD_RESPONSES,
)
async def reload(request: Request, name: NameParam, force: ForceQuery = False) -> Response:
    """Resolve the model's alias now and swap in its version if it changed (the other models are not touched)."""
    store = named_store(request, name)
    if isinstance(store, Response):
        return store
    return await reload_store(store, force)
