"""POST /predict (one record) and POST /predict/batch (up to ``MLOPS_API_MAX_BATCH`` records).

Both validate against the served bundle's generated schema, build the NumPy input directly and call
``predict_proba`` once. The handlers are ``async`` and predict inline: one record takes well under a
millisecond, and a thread hand-off would cost more than it saves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from api.errors import from_validation_error, json_response, validation_response
from api.middleware import RECORDS_KEY
from api.routers.common import current_bundle
from api.schemas import BatchPredictionResponse, ErrorResponse, PredictionResponse, ValidationErrorResponse

router = APIRouter(tags=["prediction"])

RECORD_BODY_LIMIT = 64 * 1024
RECORD_SCHEMA = "#/components/schemas/Record"
BATCH_SCHEMA = "#/components/schemas/BatchRequest"
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorResponse, "description": "The input does not match the model's schema."},
    503: {"model": ErrorResponse, "description": "No model is loaded yet; the body says how to produce one."},
}


def _body(ref: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}}


def _bad_batch(loc: list[str | int], msg: str, kind: str) -> Response:
    field = ".".join(str(p) for p in loc[1:]) or "body"
    return validation_response([{"loc": loc, "field": field, "msg": msg, "type": kind}])


class BodyTooLargeError(Exception):
    """The request body is larger than the endpoint accepts."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it exceeds ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the request body is {declared} bytes, more than the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the request body is more than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(exc: BodyTooLargeError, setting: str) -> Response:
    return _bad_batch(["body"], f"{exc} ({setting})", "too_large")


@router.post(
    "/predict",
    summary="Predict one record",
    response_model=PredictionResponse,
    responses=ERRORS,
    openapi_extra=_body(RECORD_SCHEMA),
)
async def predict(request: Request) -> Response:
    """Classify one record: the predicted class, its label and probability, and the model that answered."""
    bundle = current_bundle(request)
    if isinstance(bundle, Response):
        return bundle
    limit = min(RECORD_BODY_LIMIT, request.app.state.settings.max_body_bytes)
    try:
        row = bundle.parse_record(await read_body(request, limit))
    except BodyTooLargeError as exc:
        return _too_large(exc, "one record; use POST /predict/batch for many")
    except ValidationError as exc:
        return from_validation_error(exc)
    predictions, best = bundle.predictions(bundle.matrix([row]))
    request.app.state.metrics.count_predictions((bundle.labels[int(best[0])],), (1,))
    request.scope[RECORDS_KEY] = 1
    return json_response({**predictions[0], "model": bundle.served})


@router.post(
    "/predict/batch",
    summary="Predict many records",
    response_model=BatchPredictionResponse,
    responses=ERRORS,
    openapi_extra=_body(BATCH_SCHEMA),
)
async def predict_batch(request: Request) -> Response:
    """Classify ``{"records": [...]}`` (1 to ``MLOPS_API_MAX_BATCH`` records); answers in request order."""
    bundle = current_bundle(request)
    if isinstance(bundle, Response):
        return bundle
    try:
        payload = orjson.loads(await read_body(request, request.app.state.settings.max_body_bytes))
    except BodyTooLargeError as exc:
        return _too_large(exc, "MLOPS_API_MAX_BODY_BYTES")
    except orjson.JSONDecodeError as exc:
        return _bad_batch(["body"], f"Malformed JSON: {exc}", "json_invalid")
    if not isinstance(payload, dict):
        return _bad_batch(["body"], "Input should be an object with a 'records' list", "model_type")
    unknown = sorted(set(payload) - {"records"})
    if unknown:
        return _bad_batch(["body", unknown[0]], "Extra inputs are not permitted", "extra_forbidden")
    records = payload.get("records")
    if records is None:
        return _bad_batch(["body", "records"], "Field required", "missing")
    if not isinstance(records, list):
        return _bad_batch(["body", "records"], "Input should be a valid list", "list_type")
    limit = request.app.state.settings.max_batch
    if not records:
        return _bad_batch(["body", "records"], "List should have at least 1 item, not 0", "too_short")
    if len(records) > limit:
        return _bad_batch(
            ["body", "records"],
            f"List should have at most {limit} items (MLOPS_API_MAX_BATCH), not {len(records)}",
            "too_long",
        )
    try:
        rows = bundle.parse_records(records)
    except ValidationError as exc:
        return from_validation_error(exc, prefix=("body", "records"))
    predictions, best = bundle.predictions(bundle.matrix(rows))
    request.app.state.metrics.count_predictions(bundle.labels, np.bincount(best, minlength=len(bundle.labels)).tolist())
    request.scope[RECORDS_KEY] = len(rows)
    return json_response({"predictions": predictions, "model": bundle.served})
