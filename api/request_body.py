"""Request bodies of the prediction routes: media type, size, shape and validation, in bounded time and memory.

Every check lives here, in the app, so uvicorn (process, container) and Mangum (Lambda behind a Function URL,
API Gateway REST v1 or HTTP API, ALB) give the same answer to the same request. In order:

1. **Media type** (:func:`media_type_error`): ``Content-Type`` must be ``application/json`` or an
   ``application/*+json`` type; a ``charset`` parameter, if any, must be UTF-8 (RFC 8259: JSON is UTF-8);
   a ``Content-Encoding`` other than ``identity`` is refused. Anything else answers **415** naming the
   header and the accepted type, before the body is read. A body without ``Content-Type`` is refused the
   same way once it turns out not to be empty (:func:`missing_media_type_error`).
2. **Size** (:func:`read_body`): refused while streaming, as soon as it passes the limit (**422**,
   ``too_large``).
3. **Shape before parsing** (batch only, :func:`batch_shape_error`): C-speed passes (1 MiB at a time) count the
   body's ``{``/``[``, ``:`` and ``,`` bytes. The counts bound the number of containers, keys and values the parser
   would build (bytes inside strings only add to them), so a body that could not be a batch of at most
   ``MLOPS_API_MAX_BATCH`` records is refused (``too_complex``) without being parsed: memory stays
   proportional to the largest valid request, whatever arrives. Bodies above 1 MiB are also checked for
   numbers of more than :data:`MAX_NUMBER_DIGITS` digits (big integers cost the parser quadratic time).
4. **Parsing** with pydantic's own JSON parser (the one ``model_validate_json`` uses), on both routes: NaN,
   Infinity and huge numbers are values (so validation names their field), nesting deeper than the parser's
   200 levels is refused with its position.
5. **Shape after parsing**: at most :data:`EXTRA_KEYS` keys beyond the model's fields per batch record
   (:data:`RECORD_EXTRA_KEYS` for ``/predict``'s one record)
   (``too_many_keys``) and keys of at most :data:`MAX_KEY_CHARS` characters (``key_too_long``), checked
   before the record is validated, so no record can produce more than ``fields + EXTRA_KEYS`` errors.
6. **Validation**: batches in chunks of :data:`CHUNK` records (one call into pydantic-core each); a chunk
   that fails is validated again record by record, and validation stops as soon as the
   :class:`~api.errors.ErrorList` holds more than :data:`~api.errors.MAX_ERRORS` errors. The cost of a bad
   request is bounded by the error cap, not by how many errors it could produce.

Values are never walked below the record: a container where a feature value belongs is one error.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import Response

from api.bundle import ModelBundle, Row
from api.errors import ErrorList, error_item, error_items, json_response, safe_text

ACCEPTED_MEDIA_TYPE = "application/json"
EXTRA_KEYS = 16  # keys beyond the model's fields a batch record may carry and still get one error each
RECORD_EXTRA_KEYS = 64  # the same for POST /predict's one record (64 KiB at most: e.g. a stale client's old schema)
MAX_KEY_CHARS = 128  # longer keys cannot be field names (or are reported as such)
MAX_NUMBER_DIGITS = 100  # longest run of digits in a body above DIGIT_CHECK_BYTES
DIGIT_CHECK_BYTES = 1 << 20  # below this, big integers cannot cost the parser more than a few ms
MAX_TOP_KEYS = 16  # keys of a batch body beyond "records" that still get one error each
CHUNK = 64  # records validated per call into pydantic-core
SCAN_SLICE = 1 << 20  # the byte scans before parsing copy at most this much at a time
PARSER_DEPTH = 200  # pydantic-core's JSON parser refuses deeper nesting

_STRUCTURE = b"{[:,"
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_DIGIT_MASK = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_NUMBER = b"0" * (MAX_NUMBER_DIGITS + 1)


# ------------------------------------------------------------------------------------------- media type
def _unsupported(header: str, given: str | None, msg: str) -> Response:
    item = error_item(["header", header], msg, "unsupported_media_type", given)
    payload = {"message": f"{item['field']}: {item['msg']}", "detail": [item]}
    return json_response(payload, 415, headers={"Accept-Post": ACCEPTED_MEDIA_TYPE})


def is_json_media_type(media_type: str) -> bool:
    """``application/json`` or a structured-syntax ``application/*+json`` type (RFC 6839)."""
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


def media_type_error(headers: Any) -> Response | None:
    """415 if the request declares a body that is not UTF-8 JSON (or is compressed); None otherwise.

    A missing ``Content-Type`` passes here; :func:`missing_media_type_error` decides once the body is read.
    """
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        return _unsupported(
            "content-encoding",
            encoding,
            f"Content-Encoding {safe_text(encoding, 40)!r} is not supported: send the body uncompressed",
        )
    declared = headers.get("content-type")
    if declared is None:
        return None
    media_type, *params = (part.strip() for part in declared.split(";"))
    if not is_json_media_type(media_type.lower()):
        shown = safe_text(declared, 80)
        return _unsupported(
            "content-type", declared, f"Content-Type {shown!r} is not supported: send {ACCEPTED_MEDIA_TYPE}"
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return _unsupported(
                "content-type",
                declared,
                f"charset {safe_text(value.strip(), 40)!r} is not supported: JSON bodies are UTF-8 "
                f"({ACCEPTED_MEDIA_TYPE} or {ACCEPTED_MEDIA_TYPE}; charset=utf-8)",
            )
    return None


def missing_media_type_error(headers: Any, body: bytes | bytearray) -> Response | None:
    """415 for a non-empty body sent without ``Content-Type``."""
    if body and headers.get("content-type") is None:
        return _unsupported("content-type", None, f"Content-Type is missing: send the body as {ACCEPTED_MEDIA_TYPE}")
    return None


# ------------------------------------------------------------------------------------------- size
class BodyTooLargeError(Exception):
    """The request body is larger than the endpoint accepts."""


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The request body, refused as soon as it exceeds ``limit`` bytes (declared or streamed).

    Chunks are appended to one buffer as they arrive (no list of chunks plus a joined copy). The message is
    the same whether ``Content-Length`` was declared or not, so a front that drops the header answers the same.
    """
    declared = request.headers.get("content-length")
    message = f"The request body is more than the limit of {limit} bytes"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(message)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLargeError(message)
        body += chunk
    return body


# ------------------------------------------------------------------------------------------- limits
@dataclass(frozen=True)
class Limits:
    """What a body for one model and batch size may hold (see the module docstring)."""

    names: frozenset[str]
    fields: int
    max_keys: int
    max_key_chars: int
    max_batch: int
    containers: int  # budget of '{' and '[' bytes in a batch body
    members: int  # budget of ':' bytes
    commas: int  # budget of ',' bytes


_LIMITS: weakref.WeakKeyDictionary[ModelBundle, dict[tuple[int, int], Limits]] = weakref.WeakKeyDictionary()


def limits_for(bundle: ModelBundle, max_batch: int, extra_keys: int = EXTRA_KEYS) -> Limits:
    """The limits for ``bundle``, ``max_batch`` and ``extra_keys`` per record (cached per bundle).

    The byte budgets are what a valid batch of ``max_batch`` records can contain, with room for
    :data:`EXTRA_KEYS` unknown keys and a container value in each record (errors still named one by one),
    plus the structural bytes the spec's own strings (categories) may contain.
    """
    cached = _LIMITS.setdefault(bundle, {})
    limits = cached.get((max_batch, extra_keys))
    if limits is None:
        features = bundle.spec.features
        inner = dict.fromkeys(_STRUCTURE.decode(), 0)
        for feature in features:
            for char in inner:
                in_categories = max((c.count(char) for c in feature.categories or ()), default=0)
                inner[char] += feature.name.count(char) + in_categories
        max_keys = len(features) + extra_keys
        limits = cached[(max_batch, extra_keys)] = Limits(
            names=frozenset(f.name for f in features),
            fields=len(features),
            max_keys=max_keys,
            max_key_chars=max(MAX_KEY_CHARS, *(len(f.name) for f in features)),
            max_batch=max_batch,
            containers=2 + max_batch * (2 + inner["{"] + inner["["]),
            members=1 + MAX_TOP_KEYS + max_batch * (max_keys + inner[":"]),
            commas=1 + MAX_TOP_KEYS + max_batch * (max_keys + 2 + inner[","]),
        )
    return limits


# ------------------------------------------------------------------------------------------- parsing
def _position(body: bytes | bytearray, offset: int) -> str:
    line = body.count(b"\n", 0, offset) + 1
    column = offset - body.rfind(b"\n", 0, offset)
    return f"line {line} column {column}"


def _too_long_number(body: bytes | bytearray) -> dict[str, Any] | None:
    if len(body) <= DIGIT_CHECK_BYTES:
        return None
    offset = -1
    for start in range(0, len(body), SCAN_SLICE):  # slices overlap by a run's length: none is missed
        found = body[start : start + SCAN_SLICE + MAX_NUMBER_DIGITS].translate(_DIGIT_MASK).find(_LONG_NUMBER)
        if found >= 0:
            offset = start + found
            break
    if offset < 0:
        return None
    return error_item(
        ["body"],
        f"A number of more than {MAX_NUMBER_DIGITS} digits at {_position(body, offset)}: feature values have fewer",
        "number_too_long",
    )


class InvalidBodyError(Exception):
    """The body is not valid for the route; ``items`` are the 422 detail items (at most ``MAX_ERRORS`` + 1)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(items)} invalid field(s)")
        self.items = items


class MalformedJsonError(ValueError):
    """The body is not JSON (the message says where)."""


def parse_json(body: bytes | bytearray) -> Any:
    """The body as Python values (pydantic-core's parser: NaN and Infinity are floats, big integers ints)."""
    try:
        return from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise MalformedJsonError(str(exc)) from None


def _malformed(exc: MalformedJsonError) -> dict[str, Any]:
    reason = str(exc)
    if reason.startswith("recursion limit exceeded"):
        return error_item(["body"], f"Nested more than {PARSER_DEPTH} levels deep ({reason})", "too_deep")
    return error_item(["body"], f"Malformed JSON: {reason}", "json_invalid")


# ------------------------------------------------------------------------------------------- records
def _shape_errors(record: Any, loc: list[str | int], limits: Limits) -> list[dict[str, Any]]:
    """Too many keys or overlong keys in one record (checked before pydantic sees it)."""
    if type(record) is not dict:
        return []
    if len(record) > limits.max_keys:
        msg = (
            f"The record has {len(record)} keys; at most {limits.max_keys} are read "
            f"(the model's {limits.fields} fields and {limits.max_keys - limits.fields} more)"
        )
        return [error_item(loc, msg, "too_many_keys")]
    long = [k for k in record.keys() - limits.names if len(k) > limits.max_key_chars]
    return [
        error_item([*loc, k], f"Key of {len(k)} characters: keys are field names (at most {limits.max_key_chars})",
                   "key_too_long")
        for k in long
    ]  # fmt: skip


def _record_errors(bundle: ModelBundle, record: Any, loc: list[str | int], limits: Limits) -> list[dict[str, Any]]:
    shape = _shape_errors(record, loc, limits)
    if shape:
        return shape
    try:
        bundle.record_model.model_validate(record)
    except ValidationError as exc:
        return error_items(exc.errors(include_url=False), prefix=loc)
    return []


def validate_record(bundle: ModelBundle, body: bytes | bytearray, max_batch: int) -> Row:
    """One record (POST /predict): its input row. Raises :class:`InvalidBodyError`."""
    limits = limits_for(bundle, max_batch, RECORD_EXTRA_KEYS)
    try:
        record = parse_json(body)
    except MalformedJsonError as exc:
        raise InvalidBodyError([_malformed(exc)]) from None
    errors = ErrorList()
    shape = _shape_errors(record, ["body"], limits)
    if shape:
        errors.extend(shape)
    else:
        try:
            return list(bundle.record_model.model_validate(record).__dict__.values())
        except ValidationError as exc:
            errors.extend(error_items(exc.errors(include_url=False)))
    raise InvalidBodyError(errors.items)


def batch_shape_error(body: bytes | bytearray, limits: Limits) -> dict[str, Any] | None:
    """The ``too_complex`` item if the body holds more than a valid batch could (see the module docstring)."""
    containers = members = commas = 0
    for start in range(0, len(body), SCAN_SLICE):  # in slices: no copy of the whole body, whatever it holds
        residue = body[start : start + SCAN_SLICE].translate(None, _NOT_STRUCTURE)
        opened = residue.count(b"{") + residue.count(b"[")
        keys = residue.count(b":")
        containers, members, commas = containers + opened, members + keys, commas + len(residue) - opened - keys
    if containers <= limits.containers and members <= limits.members and commas <= limits.commas:
        return None
    msg = (
        f"The body has up to {members:,} keys, {containers:,} objects and arrays and {commas + 1:,} values: more "
        f"than a batch of at most {limits.max_batch:,} records (MLOPS_API_MAX_BATCH) of at most {limits.max_keys} "
        "keys each can hold; it was not parsed"
    )
    return error_item(["body"], msg, "too_complex")


def _top_level_errors(payload: Any, limits: Limits) -> tuple[list[Any] | None, list[dict[str, Any]]]:
    """The records list, or the errors of the batch body's own level."""
    if not isinstance(payload, dict):
        return None, [error_item(["body"], "Input should be an object with a 'records' list", "model_type")]
    errors: list[dict[str, Any]] = []
    for key in [k for k in payload if k != "records"][: MAX_TOP_KEYS + 1]:
        errors.append(error_item(["body", key], "Extra inputs are not permitted", "extra_forbidden", payload[key]))
    records = payload.get("records")
    if "records" not in payload:
        errors.append(error_item(["body", "records"], "Field required", "missing"))
    elif not isinstance(records, list):
        errors.append(error_item(["body", "records"], "Input should be a valid list", "list_type", records))
    elif not records:
        errors.append(error_item(["body", "records"], "List should have at least 1 item, not 0", "too_short"))
    elif len(records) > limits.max_batch:
        msg = f"List should have at most {limits.max_batch} items (MLOPS_API_MAX_BATCH), not {len(records)}"
        errors.append(error_item(["body", "records"], msg, "too_long"))
    return (records if not errors else None), errors


def _validate_records(bundle: ModelBundle, records: list[Any], limits: Limits, errors: ErrorList) -> list[Row]:
    """Rows of ``records`` (complete only while ``errors`` stays empty); stops once ``errors`` is full."""
    rows: list[Row] = []
    prefix: list[str | int] = ["body", "records"]
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        if not any(type(r) is dict and len(r) > limits.max_keys for r in chunk):
            try:
                parsed = bundle.parse_records(chunk)
            except ValidationError:
                pass
            else:
                if not errors:
                    rows.extend(parsed)
                continue
        for offset, record in enumerate(chunk):  # this chunk has errors: find them record by record
            if not errors.extend(_record_errors(bundle, record, [*prefix, start + offset], limits)):
                return rows
    return rows


def validate_batch(bundle: ModelBundle, body: bytes | bytearray, max_batch: int) -> list[Row]:
    """A batch body (POST /predict/batch): the input rows. Raises :class:`InvalidBodyError`.

    Runs in bounded time and memory for any body within the size limit (see the module docstring).
    """
    limits = limits_for(bundle, max_batch)
    problem = batch_shape_error(body, limits) or _too_long_number(body)
    if problem is not None:
        raise InvalidBodyError([problem])
    try:
        payload = parse_json(body)
    except MalformedJsonError as exc:
        raise InvalidBodyError([_malformed(exc)]) from None
    records, top = _top_level_errors(payload, limits)
    errors = ErrorList()
    errors.extend(top)
    if records is not None:
        rows = _validate_records(bundle, records, limits, errors)
        if not errors:
            return rows
    raise InvalidBodyError(errors.items)
