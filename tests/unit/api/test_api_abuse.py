"""Hostile and unusual requests: each answers a 4xx that names the field, with bounded work, and the same
through the app as uvicorn serves it (TestClient) and through the Lambda handler (Mangum: Function URL and
REST v1 events, the two fronts the stack deploys).

The numbers in the test names' docstrings are the issue's cases: (1) integers beyond 64 bits, (2) one request
freezing the service, (3) ``Content-Type`` ignored, (4) the process and the Lambda disagreeing, (6) NaN in
batches, control and bidi characters, HEAD, metrics labels, Lambda's body limit.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

import api.errors
import api.request_body
from api.bundle import ModelBundle
from api.errors import MAX_ERRORS
from api.lambda_handler import build_handler
from api.model_store import ModelStore
from api.request_body import EXTRA_KEYS
from api.settings import LAMBDA_MAX_BODY_BYTES, ApiSettings
from tests.datasets import breast_cancer_record
from tests.unit.api.conftest import ClientFactory, make_settings
from tests.unit.api.fakes import FakeRegistry
from tests.unit.api.lambda_events import LambdaContext, event, response_headers

pytestmark = pytest.mark.unit

GOOD = breast_cancer_record()
JSON_HEADERS = {"content-type": "application/json"}
FRONTS = ("function_url", "rest_v1")  # the Lambda fronts the stack deploys
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _raw_record(**raw: str) -> bytes:
    """GOOD as JSON text with some values replaced by raw JSON text (NaN, huge integers...)."""
    text = json.dumps({k: f"@{k}@" if k in raw else v for k, v in GOOD.items()} | {k: f"@{k}@" for k in raw})
    for key, value in raw.items():
        text = text.replace(f'"@{key}@"', value)
    return text.encode()


@pytest.fixture
def lambda_handler(registry: FakeRegistry) -> Handler:
    """The Lambda handler around the same fake registry's champion as ``client``."""
    settings = make_settings(max_batch=1000)
    store = ModelStore(settings, registry)
    store.ensure_loaded()
    return build_handler(settings, store)


@pytest.fixture
def big_client(make_client: ClientFactory) -> TestClient:
    """The app with the default batch size (1,000), as the Lambda handler above."""
    return make_client(max_batch=1000)


def _process(client: TestClient, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    response = client.request(method, path, content=body, headers=headers)
    return response.status_code, response.content.decode(), response.headers.get("content-type")


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _lambda(handler: Handler, kind: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    # as a real front does: the request's own headers only (TestClient sends no Content-Type unless told)
    given: dict[str, str | None] = {"Content-Type": None} | dict(headers)
    options: dict[str, Any] = {"headers": given}
    if body is not None and not _is_utf8(body):
        options["base64_body"] = True  # what a front does with bytes that are not text
    response = handler(event(kind, method, path, body, **options), LambdaContext())
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        import base64

        raw = base64.b64decode(raw).decode()
    return response["statusCode"], raw, response_headers(response).get("content-type")


def _same_everywhere(
    client: TestClient, handler: Handler, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    """Send one request to the process app and to every Lambda front; assert identical answers; return it."""
    status, text, content_type = _process(client, method, path, body, headers)
    for kind in FRONTS:
        assert _lambda(handler, kind, method, path, body, headers) == (status, text, content_type), kind
    assert status < 500, text
    return status, (json.loads(text) if text else None)


def _field(answer: dict[str, Any], field: str) -> dict[str, Any]:
    fields = [item["field"] for item in answer["detail"]]
    assert field in fields, answer
    return answer["detail"][fields.index(field)]


# ----------------------------------------------------------------------------------------------------- (1)
BIG = "100000000000000000000"  # 10**20: beyond 64 bits
BIG_CASES = [
    ("/predict", _raw_record(mean_radius=BIG), "mean_radius", "less than or equal to 60"),
    ("/predict", _raw_record(mean_area="-" + BIG * 3), "mean_area", "greater than or equal to 0"),
    ("/predict", _raw_record(unknown_field=BIG), "unknown_field", "extra inputs"),
    ("/predict", _raw_record(mean_radius="9" * 4000), "mean_radius", ""),
    ("/predict/batch", b'{"records": [' + _raw_record(mean_radius=BIG) + b"]}", "records[0].mean_radius", "less than"),
    ("/predict/batch", b'{"records": [' + _json(GOOD) + b'], "x": ' + BIG.encode() + b"}", "x", "extra inputs"),
]


@pytest.mark.parametrize(("path", "body", "field", "words"), BIG_CASES, ids=[c[2] + c[0] for c in BIG_CASES])
def test_huge_integers_are_named_not_500(
    big_client: TestClient, lambda_handler: Handler, path: str, body: bytes, field: str, words: str
) -> None:
    """(1) An integer beyond 64 bits answers 422 naming its field, its digits echoed as a string."""
    status, answer = _same_everywhere(big_client, lambda_handler, "POST", path, body, JSON_HEADERS)
    assert status == 422, answer
    item = _field(answer, field)
    assert words in item["msg"].lower()
    assert isinstance(item["input"], str) and item["input"].lstrip("-")[:1] in ("1", "9"), item


# ----------------------------------------------------------------------------------------------------- (2)
@pytest.fixture
def built_errors(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the 422 detail items built (every one goes through api.errors.error_item)."""
    calls = [0]
    original = api.errors.error_item

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(api.errors, "error_item", counting)
    monkeypatch.setattr(api.request_body, "error_item", counting)
    return calls


def test_the_issue_s_batch_is_refused_before_parsing(big_client: TestClient, built_errors: list[int]) -> None:
    """(2) 600 records of 1,000 unknown keys (6.5 MB): refused from byte counts alone, one error built."""
    record = {f"key{i:03d}": 1 for i in range(1000)}
    body = _json({"records": [record] * 600})
    assert 6_000_000 < len(body) < 10 * 1024 * 1024
    started = time.perf_counter()
    response = big_client.post("/predict/batch", content=body, headers=JSON_HEADERS)
    elapsed = time.perf_counter() - started
    assert response.status_code == 422
    answer = response.json()
    assert [item["type"] for item in answer["detail"]] == ["too_complex"]
    assert "MLOPS_API_MAX_BATCH" in answer["detail"][0]["msg"]
    assert built_errors[0] == 1
    assert elapsed < 5  # generous (measured ~0.1 s; was 15 s): the cost is reading 6.5 MB


def test_errors_stop_at_the_cap_before_they_are_built(big_client: TestClient, built_errors: list[int]) -> None:
    """(2) 1,000 records with EXTRA_KEYS unknown keys each (within every byte budget): ~51 errors, not 16,000."""
    extra = {f"unknown_{i:02d}": 1.0 for i in range(EXTRA_KEYS)}
    response = big_client.post(
        "/predict/batch", content=_json({"records": [GOOD | extra] * 1000}), headers=JSON_HEADERS
    )
    assert response.status_code == 422
    answer = response.json()
    assert len(answer["detail"]) == MAX_ERRORS and answer["truncated"] is True
    assert answer["detail"][0]["field"] == "records[0].unknown_00"
    assert built_errors[0] <= MAX_ERRORS + 1 + 30 + EXTRA_KEYS  # the cap plus at most one record's worth


def test_records_with_too_many_keys_are_refused_whole(big_client: TestClient, built_errors: list[int]) -> None:
    """(2) A record with more keys than the model's fields + EXTRA_KEYS gets one error, not one per key."""
    wide = {f"k{i}": 0 for i in range(2000)}
    response = big_client.post("/predict/batch", content=_json({"records": [GOOD, wide, GOOD]}), headers=JSON_HEADERS)
    answer = response.json()
    assert response.status_code == 422
    item = _field(answer, "records[1]")
    assert item["type"] == "too_many_keys" and "2000 keys" in item["msg"]
    assert built_errors[0] == 1
    single = big_client.post("/predict", content=_json(wide), headers=JSON_HEADERS).json()
    assert [i["type"] for i in single["detail"]] == ["too_many_keys"] and single["detail"][0]["field"] == "body"


def test_overlong_keys_and_deep_nesting_are_named(big_client: TestClient) -> None:
    """(2) Keys longer than any field name and nesting beyond the parser's depth answer 422 with a place."""
    long_key = "k" * 5000
    answer = big_client.post("/predict", content=_json(GOOD | {long_key: 1}), headers=JSON_HEADERS).json()
    item = answer["detail"][0]
    assert item["type"] == "key_too_long" and "5000 characters" in item["msg"]
    assert len(item["field"]) < 100 and "(5000 chars)" in item["field"]
    deep = b'{"records": [{"mean_radius": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    answer = big_client.post("/predict/batch", content=deep, headers=JSON_HEADERS).json()
    assert answer["detail"][0]["type"] in ("too_deep", "too_complex"), answer


def test_big_batches_do_not_block_the_event_loop(big_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """(2) While a large batch is validated (held here on an event), /health answers at once."""
    entered, release = threading.Event(), threading.Event()
    original = ModelBundle.parse_records

    def held(self: ModelBundle, records: list[Any]) -> Any:
        entered.set()
        release.wait(5)  # on the event loop (the old behaviour) this stalls everything for 5 s
        return original(self, records)

    monkeypatch.setattr(ModelBundle, "parse_records", held)
    body = _json({"records": [GOOD] * 200})
    assert len(body) > 64 * 1024  # above INLINE_BODY_BYTES: handled in the thread pool

    async def scenario() -> tuple[bool, float]:
        transport = httpx.ASGITransport(app=big_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            batch = asyncio.create_task(http.post("/predict/batch", content=body, headers=JSON_HEADERS))
            deadline = time.monotonic() + 5
            while not entered.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            health = await http.get("/health")
            waited = time.perf_counter() - started
            pending = not batch.done()
            release.set()
            assert health.status_code == 200 and (await batch).status_code == 200
            return pending, waited

    pending, waited = asyncio.run(scenario())
    assert pending, "the batch had finished before /health answered: it ran on the event loop"
    assert waited < 2


def test_large_batches_run_one_at_a_time_and_release_their_memory(
    big_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(2) Two large batches sent at once: the second waits for the first (no GIL contention, one parse in
    memory at a time), and each one's memory is handed back to the system once answered."""
    from api.routers import predict

    running, most, trims = [0], [0], []
    original = ModelBundle.parse_records

    def counted(self: ModelBundle, records: list[Any]) -> Any:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.2)
        running[0] -= 1
        return original(self, records)

    monkeypatch.setattr(ModelBundle, "parse_records", counted)
    monkeypatch.setattr(predict, "release_free_memory", lambda: trims.append(1) or True)
    body = _json({"records": [GOOD] * 200})

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=big_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            sends = [http.post("/predict/batch", content=body, headers=JSON_HEADERS) for _ in range(3)]
            return [r.status_code for r in await asyncio.gather(*sends)]

    assert asyncio.run(scenario()) == [200, 200, 200]
    assert most[0] == 1 and len(trims) == 3


def test_release_free_memory_works_here() -> None:
    from api.memory import release_free_memory

    assert release_free_memory()  # glibc (Debian, the images, Lambda's Amazon Linux)


# ----------------------------------------------------------------------------------------------------- (3)
REFUSED_TYPES = [
    "text/plain",
    "image/png",
    None,
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json; charset=latin-1",
    "application/jsonp",
    "application/+json",
    "text/json",
]


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize("content_type", REFUSED_TYPES, ids=[str(t) for t in REFUSED_TYPES])
def test_non_json_bodies_get_415(
    big_client: TestClient, lambda_handler: Handler, path: str, content_type: str | None
) -> None:
    """(3) A body that is not declared as UTF-8 JSON answers 415 naming the header and application/json."""
    body = _json(GOOD if path == "/predict" else {"records": [GOOD]})
    headers = {} if content_type is None else {"content-type": content_type}
    status, answer = _same_everywhere(big_client, lambda_handler, "POST", path, body, headers)
    assert status == 415, answer
    item = _field(answer, "header.content-type")
    assert item["type"] == "unsupported_media_type" and "application/json" in item["msg"]
    assert item["input"] == content_type
    assert big_client.post(path, content=body, headers=headers).headers["accept-post"] == "application/json"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=UTF-8",
        'application/json;charset="utf8"',
        "application/vnd.api+json",
        "Application/JSON",
    ],
)
def test_json_media_types_are_accepted(big_client: TestClient, content_type: str) -> None:
    """(3) application/json with or without a UTF-8 charset, and +json types, are JSON."""
    response = big_client.post("/predict", content=_json(GOOD), headers={"content-type": content_type})
    assert response.status_code == 200, response.text


def test_compressed_bodies_get_415_and_empty_bodies_422(big_client: TestClient) -> None:
    """(3) Content-Encoding is refused by name; an empty body without Content-Type is a JSON error, not 415."""
    gz = big_client.post("/predict", content=b"\x1f\x8b", headers=JSON_HEADERS | {"content-encoding": "gzip"})
    assert gz.status_code == 415 and _field(gz.json(), "header.content-encoding")["input"] == "gzip"
    empty = big_client.post("/predict", content=b"")
    assert empty.status_code == 422 and empty.json()["detail"][0]["type"] == "json_invalid"


# ----------------------------------------------------------------------------------------------------- (4)
FORM_BODY = _json(GOOD)
MULTIPART = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="r.json"\r\nContent-Type: application/json'
    b"\r\n\r\n" + FORM_BODY + b"\r\n--xyz--\r\n"
)
SAME_CASES: list[tuple[str, str, str, bytes | None, dict[str, str]]] = [
    ("form-urlencoded JSON", "POST", "/predict", FORM_BODY, {"content-type": "application/x-www-form-urlencoded"}),
    ("form as LocalStack re-encodes it", "POST", "/predict", b"%7B%22mean_radius%22%3A+1.0%7D=",
     {"content-type": "application/x-www-form-urlencoded"}),
    ("multipart without boundary", "POST", "/predict", FORM_BODY, {"content-type": "multipart/form-data"}),
    ("multipart", "POST", "/predict/batch", MULTIPART, {"content-type": "multipart/form-data; boundary=xyz"}),
    ("no content type", "POST", "/predict/batch", _json({"records": [GOOD]}), {}),
    ("broken JSON", "POST", "/predict/batch", b'{"records": [', JSON_HEADERS),
    ("empty", "POST", "/predict", b"", JSON_HEADERS),
    ("valid", "POST", "/predict", FORM_BODY, JSON_HEADERS),
    ("HEAD /health", "HEAD", "/health", None, {}),
    ("HEAD /ready", "HEAD", "/ready", None, {}),
    ("unknown method", "PROPFIND", "/predict", None, {}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "method", "path", "body", "headers"), SAME_CASES, ids=[c[0] for c in SAME_CASES])
def test_process_and_lambda_answer_alike(
    big_client: TestClient,
    lambda_handler: Handler,
    case: str,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> None:
    """(4) Form, multipart, base64 (Function URL) or text bodies: one status and body on every front."""
    status, answer = _same_everywhere(big_client, lambda_handler, method, path, body, headers)
    if "form" in case or "multipart" in case:
        assert status == 415, answer


# ----------------------------------------------------------------------------------------------------- (6)
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_non_finite_numbers_name_the_field_on_both_routes(
    big_client: TestClient, lambda_handler: Handler, path: str, literal: str
) -> None:
    """(6) NaN and infinities are values that name their field on /predict and /predict/batch alike."""
    record = _raw_record(mean_texture=literal)
    body = record if path == "/predict" else b'{"records": [' + _json(GOOD) + b", " + record + b"]}"
    status, answer = _same_everywhere(big_client, lambda_handler, "POST", path, body, JSON_HEADERS)
    field = "mean_texture" if path == "/predict" else "records[1].mean_texture"
    assert status == 422
    item = _field(answer, field)
    assert "finite number" in item["msg"]
    assert item["input"] == {"NaN": "NaN", "1e999": "Infinity"}.get(literal, literal)


HOSTILE = [
    "mean\u202eradius",
    "\x1b[31mred\x1b[0m",
    "zero\u200bwidth",
    "nul\x00",
    "\u2066isolate\u2069",
    "line\u2028sep",
]


@pytest.mark.parametrize("key", HOSTILE, ids=["bidi-override", "ansi", "zero-width", "nul", "isolate", "line-sep"])
def test_control_and_bidi_characters_are_escaped(big_client: TestClient, lambda_handler: Handler, key: str) -> None:
    """(6) Keys and values with control, bidi or invisible characters are echoed escaped, never raw."""
    body = _json({"records": [GOOD | {key: key}, GOOD | {"mean_radius": key}]})
    status, answer = _same_everywhere(big_client, lambda_handler, "POST", "/predict/batch", body, JSON_HEADERS)
    assert status == 422
    raw = json.dumps(answer, ensure_ascii=False)
    bad = [c for c in key if not c.isprintable()]
    assert bad and not any(c in raw for c in bad), raw
    first, second = answer["detail"][0], answer["detail"][1]
    assert first["field"].startswith('records[0]["') and "\\" in first["field"]
    assert first["loc"][-1] == first["input"] and "\\" in first["input"]
    assert second["field"] == "records[1].mean_radius" and "\\" in second["input"]


@pytest.mark.parametrize("path", ["/health", "/ready", "/model", "/metrics"])
def test_head_answers_where_get_does(big_client: TestClient, lambda_handler: Handler, path: str) -> None:
    """(6) HEAD /health and /ready (and /model, /metrics): GET's status and headers, no body."""
    get = big_client.get(path)
    head = big_client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    for kind in FRONTS:
        response = lambda_handler(event(kind, "HEAD", path), LambdaContext())
        assert response["statusCode"] == 200 and not response.get("body"), (kind, response)


def test_unusual_methods_do_not_add_metric_series(big_client: TestClient) -> None:
    """(6) Methods outside the standard set and unknown paths are counted under fixed labels."""
    for method in ("PROPFIND", "FOO", "BREW", "M-SEARCH"):
        assert big_client.request(method, "/health").status_code == 405
        assert big_client.request(method, f"/scan/{method}").status_code == 404
    text = big_client.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("mlops_api_requests_total{")]
    assert not [line for line in lines if any(m in line for m in ("PROPFIND", "FOO", "BREW", "M-SEARCH"))], lines
    assert 'mlops_api_requests_total{method="other",path="/health",status="405"} 4.0' in lines
    assert 'mlops_api_requests_total{method="other",path="other",status="404"} 4.0' in lines


def test_lambda_settings_default_to_the_payload_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """(6) In Lambda the body limit is Lambda's 6 MB payload limit unless MLOPS_API_MAX_BODY_BYTES says otherwise."""
    monkeypatch.delenv("MLOPS_API_MAX_BODY_BYTES", raising=False)
    assert ApiSettings.for_lambda().max_body_bytes == LAMBDA_MAX_BODY_BYTES == 6 * 1024 * 1024
    assert ApiSettings.for_lambda().cache_publish is False
    assert ApiSettings().max_body_bytes == 10 * 1024 * 1024
    monkeypatch.setenv("MLOPS_API_MAX_BODY_BYTES", "2000000")
    assert ApiSettings.for_lambda().max_body_bytes == 2_000_000


def test_lambda_refuses_bodies_above_6_mb(
    registry: FakeRegistry, big_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(6) A 6.5 MB batch: the process (10 MiB limit) predicts it, the Lambda refuses it as AWS would."""
    monkeypatch.delenv("MLOPS_API_MAX_BODY_BYTES", raising=False)
    store = ModelStore(make_settings(max_batch=1000), registry)
    store.ensure_loaded()
    handler = build_handler(None, store)  # the function's own settings: ApiSettings.for_lambda()
    body = _json({"records": [GOOD] * 10}) + b" " * 6_500_000  # valid JSON, padded past 6 MiB
    assert big_client.post("/predict/batch", content=body, headers=JSON_HEADERS).status_code == 200
    for kind in FRONTS:
        response = handler(event(kind, "POST", "/predict/batch", body), LambdaContext())
        assert response["statusCode"] == 422, kind
        assert "limit of 6291456 bytes" in json.loads(response["body"])["detail"][0]["msg"]


def test_the_module_handler_uses_the_lambda_settings(registry: FakeRegistry) -> None:
    """(6) build_handler without settings takes ApiSettings.for_lambda()."""
    store = ModelStore(make_settings(), registry)
    handler = build_handler(None, store)
    assert handler.app.state.settings.max_body_bytes == LAMBDA_MAX_BODY_BYTES  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------------- all
def _nasty_bodies() -> Iterator[tuple[str, bytes]]:
    yield "lone surrogate key", b'{"\\ud800": 1}'
    yield "invalid utf-8", b'{"mean_radius": "\xff\xfe"}'
    yield "nul bytes", b"\x00" * 100
    yield "whitespace only", b" \n\t " * 100
    yield "top-level string", b'"records"'
    yield "top-level number", BIG.encode()
    yield "top-level null", b"null"
    yield "array of records", b"[" + _json(GOOD) + b"]"
    yield "records of arrays", b'{"records": [[1, 2, 3]]}'
    yield "records null", b'{"records": null}'
    yield "4300-digit number", b'{"records": [{"mean_radius": ' + b"7" * 4300 + b"}]}"
    yield "5000-digit number", b'{"records": [{"mean_radius": ' + b"7" * 5000 + b"}]}"
    yield "exponent overflow", b'{"records": [{"mean_radius": 1e400000000000}]}'
    yield "duplicate keys", b'{"records": [' + _json(GOOD)[:-1] + b', "mean_radius": 99}]}'
    yield "many top-level keys", _json({f"k{i}": i for i in range(500)} | {"records": [GOOD]})
    yield "string megabyte", _json({"records": [GOOD | {"mean_radius": "x" * 1_000_000}]})
    yield "escaped megabyte", b'{"records": [{"mean_radius": "' + b"\\u202e" * 200_000 + b'"}]}'


@pytest.mark.parametrize(("case", "body"), list(_nasty_bodies()), ids=[c for c, _ in _nasty_bodies()])
def test_hostile_bodies_answer_4xx_alike_everywhere(
    big_client: TestClient, lambda_handler: Handler, case: str, body: bytes
) -> None:
    """Whatever the body, both routes answer 4xx with a JSON body naming a field, the same on every front."""
    for path in ("/predict", "/predict/batch"):
        status, answer = _same_everywhere(big_client, lambda_handler, "POST", path, body, JSON_HEADERS)
        assert 400 <= status < 500, (path, answer)
        assert answer["detail"] and all(item["field"] for item in answer["detail"])
        assert len(json.dumps(answer)) < 40_000  # echoes are truncated
