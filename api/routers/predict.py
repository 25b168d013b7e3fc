"""POST /predict (one record) and POST /predict/batch (up to ``MLOPS_API_MAX_BATCH`` records) of the default model.

:func:`predict_one` and :func:`predict_many` answer for any model: :mod:`api.routers.models` uses them for
``POST /models/{name}/predict`` and ``/predict/batch``, so every model gets the same checks, limits and errors.

Both check the body with :mod:`api.request_body` (media type, size, shape, then the served bundle's generated
schema, in bounded time and memory), build the NumPy input directly and call ``predict_proba`` once. One
record is handled inline: it takes well under a millisecond, and a thread hand-off would cost more than it
saves. A batch body above :data:`INLINE_BODY_BYTES` is parsed, validated and predicted in the thread pool,
so the event loop keeps answering (``/health`` included) while it runs, one such body at a time
(:data:`LARGE_BODY_LOCK`): with one worker per core, running several at once gains no throughput, and each
extra thread competes with the event loop for the GIL. Their memory is handed back once answered
(:func:`api.memory.release_free_memory`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from api.bundle import ModelBundle
from api.errors import error_item, json_response, validation_response
from api.memory import release_free_memory
from api.metrics import ApiMetrics
from api.middleware import RECORDS_KEY
from api.request_body import (
    BodyTooLargeError,
    InvalidBodyError,
    media_type_error,
    missing_media_type_error,
    read_body,
    validate_batch,
    validate_record,
)
from api.routers.common import current_bundle, fleet_of
from api.schemas import BatchPredictionResponse, ErrorResponse, PredictionResponse, ValidationErrorResponse

router = APIRouter(tags=["prediction"])

RECORD_BODY_LIMIT = 64 * 1024
INLINE_BODY_BYTES = 64 * 1024  # larger batch bodies are handled in the thread pool
LARGE_BODY_LOCK = threading.Lock()  # one large batch body parsed and validated at a time
RECORD_SCHEMA = "#/components/schemas/Record"
BATCH_SCHEMA = "#/components/schemas/BatchRequest"
ERRORS: dict[int | str, dict[str, Any]] = {
    415: {
        "model": ValidationErrorResponse,
        "description": "The body is not application/json (Content-Type, charset or Content-Encoding).",
    },
    422: {"model": ValidationErrorResponse, "description": "The input does not match the model's schema."},
    503: {"model": ErrorResponse, "description": "No model is loaded yet; the body says how to produce one."},
}


def _body(ref: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}}


BundleFor = Callable[[], ModelBundle | Response]


async def _bundle_and_body(
    request: Request, limit: int, setting: str, bundle_for: BundleFor
) -> tuple[ModelBundle, bytes | bytearray] | Response:
    """The model's bundle and the request body, or the answer that refuses the request.

    In order: the declared media type (415), a model to serve (503), the body's size while it streams in (422
    ``too_large``, naming ``setting``), a body without ``Content-Type`` (415).
    """
    refused = media_type_error(request.headers)
    if refused is not None:
        return refused
    bundle = bundle_for()
    if isinstance(bundle, Response):
        return bundle
    try:
        body = await read_body(request, limit)
    except BodyTooLargeError as exc:
        return validation_response([error_item(["body"], f"{exc} ({setting})", "too_large")])
    refused = missing_media_type_error(request.headers, body)
    if refused is not None:
        return refused
    return bundle, body


async def predict_one(request: Request, model: str, bundle_for: BundleFor, batch_route: str) -> Response:
    """Answer one record with the bundle ``bundle_for`` gives (counted under ``model`` in the metrics)."""
    settings = request.app.state.settings
    limit = min(RECORD_BODY_LIMIT, settings.max_body_bytes)
    read = await _bundle_and_body(request, limit, f"one record; use POST {batch_route} for many", bundle_for)
    if isinstance(read, Response):
        return read
    bundle, body = read
    try:
        row = validate_record(bundle, body, settings.max_batch)
    except InvalidBodyError as exc:
        return validation_response(exc.items)
    predictions, best = bundle.predictions(bundle.matrix([row]))
    request.app.state.metrics.count_predictions(model, (bundle.count_labels[int(best[0])],), (1,))
    request.scope[RECORDS_KEY] = 1
    return json_response({**predictions[0], "model": bundle.served})


def _answer_batch(
    bundle: ModelBundle,
    body: bytes | bytearray,
    max_batch: int,
    metrics: ApiMetrics,
    scope: MutableMapping[str, Any],
    model: str,
) -> Response:
    """Validate and predict a batch body (in the thread pool for large bodies)."""
    try:
        rows = validate_batch(bundle, body, max_batch)
    except InvalidBodyError as exc:
        return validation_response(exc.items)
    predictions, best = bundle.predictions(bundle.matrix(rows))
    labels = bundle.count_labels
    metrics.count_predictions(model, labels, np.bincount(best, minlength=len(labels)).tolist())
    scope[RECORDS_KEY] = len(rows)
    return json_response({"predictions": predictions, "model": bundle.served})


def _answer_large_batch(
    bundle: ModelBundle,
    body: bytes | bytearray,
    max_batch: int,
    metrics: ApiMetrics,
    scope: MutableMapping[str, Any],
    model: str,
) -> Response:
    """:func:`_answer_batch` for a large body, in a worker thread, one at a time; its memory is then released."""
    with LARGE_BODY_LOCK:
        try:
            return _answer_batch(bundle, body, max_batch, metrics, scope, model)
        finally:
            release_free_memory()


async def predict_many(request: Request, model: str, bundle_for: BundleFor) -> Response:
    """Answer ``{"records": [...]}`` with the bundle ``bundle_for`` gives, in request order."""
    settings = request.app.state.settings
    read = await _bundle_and_body(request, settings.max_body_bytes, "MLOPS_API_MAX_BODY_BYTES", bundle_for)
    if isinstance(read, Response):
        return read
    bundle, body = read
    args = (bundle, body, settings.max_batch, request.app.state.metrics, request.scope, model)
    if len(body) > INLINE_BODY_BYTES:
        return await run_in_threadpool(_answer_large_batch, *args)
    return _answer_batch(*args)


@router.post(
    "/predict",
    summary="Predict one record (default model)",
    response_model=PredictionResponse,
    responses=ERRORS,
    openapi_extra=_body(RECORD_SCHEMA),
)
async def predict(request: Request) -> Response:
    """Predict one record with the default model: for a classifier the class, its label and probability."""
    return await predict_one(request, fleet_of(request).default_name, lambda: current_bundle(request), "/predict/batch")


@router.post(
    "/predict/batch",
    summary="Predict many records (default model)",
    response_model=BatchPredictionResponse,
    responses=ERRORS,
    openapi_extra=_body(BATCH_SCHEMA),
)
async def predict_batch(request: Request) -> Response:
    """Predict ``{"records": [...]}`` (1 to ``MLOPS_API_MAX_BATCH`` records) with the default model, in order."""
    return await predict_many(request, fleet_of(request).default_name, lambda: current_bundle(request))
