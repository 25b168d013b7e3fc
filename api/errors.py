"""Error answers: every bad input is a 422 that names the field and the reason; nothing bad in is a 500.

The 422 body (:class:`api.schemas.ValidationErrorResponse`) keeps FastAPI's ``detail`` list (``loc``,
``msg``, ``type``) and adds ``field`` (a readable path such as ``records[3].mean_radius``) and a one-line
``message``. At most :data:`MAX_ERRORS` items are listed (a batch of bad records could produce thousands).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

MAX_ERRORS = 50
JSON = "application/json"


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (NumPy scalars and non-string keys allowed)."""
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def _field_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else type(value).__name__


def error_items(errors: Iterable[dict[str, Any]], prefix: Sequence[str | int] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic error dicts -> 422 detail items, with ``loc`` prefixed and a readable ``field``."""
    items = []
    for err in errors:
        loc = [*prefix, *err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            msg = f"Malformed JSON: {(err.get('ctx') or {}).get('error', msg)}"
        item = {"loc": loc, "field": _field_path(loc[1:] if loc[:1] == ["body"] else loc), "msg": msg,
                "type": str(err.get("type", "value_error"))}  # fmt: skip
        if "input" in err and err.get("type") not in ("missing", "json_invalid"):
            item["input"] = _scalar(err["input"])
        items.append(item)
    return items


def validation_response(items: list[dict[str, Any]]) -> Response:
    """The 422 answer for a list of detail items (truncated to :data:`MAX_ERRORS`)."""
    total = len(items)
    shown = items[:MAX_ERRORS]
    first = "; ".join(f"{i['field']}: {i['msg']}" for i in shown[:3])
    more = f" (and {total - 3} more)" if total > 3 else ""
    payload: dict[str, Any] = {
        "message": f"{total} invalid field{'s' if total != 1 else ''}: {first}{more}",
        "detail": shown,
    }
    if total > MAX_ERRORS:
        payload["truncated"] = total - MAX_ERRORS
    return json_response(payload, 422)


def from_validation_error(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> Response:
    """The 422 answer for a pydantic ``ValidationError`` raised while validating ``prefix``."""
    return validation_response(error_items(exc.errors(include_url=False), prefix))


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's own validation errors and HTTP errors answer in the same JSON shapes as the service."""

    async def on_request_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(error_items(exc.errors(), prefix=()))

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        payload = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return json_response(payload, exc.status_code, headers=dict(exc.headers or {}))

    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
