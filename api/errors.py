"""Error answers: every bad input is a 4xx that names the field and the reason; nothing bad in is a 500.

The 422 body (:class:`api.schemas.ValidationErrorResponse`) keeps FastAPI's ``detail`` list (``loc``,
``msg``, ``type``) and adds ``field`` (a readable path such as ``records[3].mean_radius``) and a one-line
``message``. At most :data:`MAX_ERRORS` items are listed: validation stops collecting once it has one more
than that (see :class:`ErrorList`), so a batch of bad records never builds thousands of errors, and the answer
then says ``"truncated": true``.

Nothing a client sent is echoed raw: keys in ``loc``/``field`` and echoed ``input`` values go through
:func:`safe_text`/:func:`safe_input` (truncated, control, format/bidi and separator characters escaped, integers
beyond 53 bits and non-finite floats as strings), so the JSON writer can always write the answer and a terminal
or log viewer shows what was sent, not what it would do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

MAX_ERRORS = 50
JSON = "application/json"
KEY_CHARS = 64  # longest key shown in loc/field
TEXT_CHARS = 100  # longest string input shown
MESSAGE_CHARS = 300  # longest msg shown
SAFE_INT = 2**53  # beyond this, integers are shown as strings (JavaScript's exact range; orjson stops at 64 bits)
_PLAIN_KEY_EXTRA = frozenset("_-$@+/")


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (NumPy scalars and non-string keys allowed)."""
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


# ------------------------------------------------------------------------------------------ safe rendering
def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(text: str, limit: int = TEXT_CHARS) -> str:
    r"""``text`` fit to show: at most ``limit`` characters (then ``…(N chars)``), non-printable ones escaped.

    Non-printable means what :meth:`str.isprintable` says: control (C0, C1), format (bidi overrides and
    isolates, zero-width characters, BOM), surrogate, private-use and unassigned code points, and separators
    other than the ASCII space. They are written as ``\xNN``/``\uNNNN``/``\UNNNNNNNN``, as ``repr`` does.
    """
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else _escape(c) for c in cut)
    if len(text) > limit:
        cut += f"…({len(text)} chars)"
    return cut


def _plain_key(key: str) -> bool:
    return bool(key) and len(key) <= KEY_CHARS and all(c.isalnum() or c in _PLAIN_KEY_EXTRA for c in key)


def safe_key(key: str | int) -> str | int:
    """A ``loc`` element fit to echo: indexes as they are, keys through :func:`safe_text`."""
    return key if isinstance(key, int) else safe_text(str(key), KEY_CHARS)


def safe_int(value: int) -> int | str:
    """``value``, or its digits as a (shortened) string when JSON readers could not hold it exactly."""
    if -SAFE_INT <= value <= SAFE_INT:
        return value
    try:
        digits = str(value)
    except ValueError:  # more digits than int_max_str_digits allows
        return f"<integer of {value.bit_length()} bits>"
    return digits if len(digits) <= 40 else f"{digits[:20]}…({len(digits.lstrip('-'))} digits)"


def safe_input(value: Any) -> Any:
    """An echoed input value that any JSON writer and reader handles and no terminal misrenders."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return safe_int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, bytes | bytearray):
        return safe_text(repr(bytes(value[: TEXT_CHARS + 1])))
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _quoted(key: str) -> str:
    r"""``key`` as a double-quoted string: ``"`` and ``\`` escaped, non-printable characters as in safe_text."""
    cut = key[:KEY_CHARS]
    body = "".join('\\"' if c == '"' else "\\\\" if c == "\\" else c if c.isprintable() else _escape(c) for c in cut)
    return f'"{body}…({len(key)} chars)"' if len(key) > KEY_CHARS else f'"{body}"'


def field_path(loc: Sequence[str | int]) -> str:
    """A readable path: ``records[3].mean_radius``; keys that are not plain names are quoted: ``records[3]["a b"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _plain_key(part):
            out += f".{part}" if out else part
        else:
            out += f"[{_quoted(part)}]"
    return out or "body"


def error_item(loc: Sequence[str | int], msg: str, kind: str, value: Any = ...) -> dict[str, Any]:
    """One 422 detail item (``value``: the input to echo, if any), everything client-sent made safe."""
    loc = list(loc)
    item: dict[str, Any] = {
        "loc": [safe_key(p) for p in loc],
        "field": field_path(loc[1:] if loc[:1] == ["body"] else loc),
        "msg": safe_text(msg, MESSAGE_CHARS),
        "type": kind,
    }
    if value is not ...:
        item["input"] = safe_input(value)
    return item


class ErrorList:
    """Collects detail items and stops at one more than :data:`MAX_ERRORS` (so it knows there are more).

    Validators ask :attr:`full` before doing work that could produce more errors, so the cost of a bad
    request is bounded by the cap, not by how many errors the request could produce.
    """

    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.limit = limit
        self.items: list[dict[str, Any]] = []

    @property
    def full(self) -> bool:
        """True once more than ``limit`` items were collected."""
        return len(self.items) > self.limit

    @property
    def room(self) -> int:
        """How many more items are wanted."""
        return max(0, self.limit + 1 - len(self.items))

    def add(self, item: dict[str, Any]) -> bool:
        """Add ``item`` unless full; returns whether more are wanted."""
        if not self.full:
            self.items.append(item)
        return not self.full

    def extend(self, items: Iterable[dict[str, Any]]) -> bool:
        """Add items until full; returns whether more are wanted."""
        for item in items:
            if not self.add(item):
                return False
        return not self.full

    def __bool__(self) -> bool:
        return bool(self.items)


def error_items(errors: Iterable[Mapping[str, Any]], prefix: Sequence[str | int] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic error dicts -> 422 detail items, with ``loc`` prefixed and a readable ``field``."""
    items = []
    for err in errors:
        loc = [*prefix, *err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        kind = str(err.get("type", "value_error"))
        if kind == "json_invalid":
            msg = f"Malformed JSON: {(err.get('ctx') or {}).get('error', msg)}"
        has_input = "input" in err and kind not in ("missing", "json_invalid")
        items.append(error_item(loc, msg, kind, err["input"] if has_input else ...))
    return items


def validation_response(items: list[dict[str, Any]], truncated: bool | None = None) -> Response:
    """The 422 answer for detail items: at most :data:`MAX_ERRORS` listed, ``truncated`` when there were more.

    ``truncated`` defaults to whether ``items`` is longer than the cap (an :class:`ErrorList` holds one more
    item than the cap when validation stopped early; the total is then unknown and not counted).
    """
    more = len(items) > MAX_ERRORS if truncated is None else truncated
    shown = items[:MAX_ERRORS]
    first = "; ".join(f"{i['field']}: {i['msg']}" for i in shown[:3])
    if more:
        message = f"more than {MAX_ERRORS} invalid fields (the first {MAX_ERRORS} are listed): {first} ..."
    else:
        tail = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
        message = f"{len(shown)} invalid field{'s' if len(shown) != 1 else ''}: {first}{tail}"
    payload: dict[str, Any] = {"message": message, "detail": shown}
    if more:
        payload["truncated"] = True
    return json_response(payload, 422)


def from_validation_error(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> Response:
    """The 422 answer for a pydantic ``ValidationError`` raised while validating ``prefix``."""
    return validation_response(error_items(exc.errors(include_url=False), prefix))


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's own validation errors and HTTP errors answer in the same JSON shapes as the service."""

    async def on_request_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = ErrorList()
        errors.extend(error_items(exc.errors(), prefix=()))
        return validation_response(errors.items)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        payload = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return json_response(payload, exc.status_code, headers=dict(exc.headers or {}))

    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
