"""What the browser tests of /docs and /redoc check, and a REST (v1)-like stage gateway in front of a Lambda process.

:func:`check_docs` opens ``<base>/docs`` and ``<base>/redoc`` in headless Chromium, waits until every
operation of the API is rendered, checks that every feature of the served model is in the rendered request
schema, runs "Try it out" on ``GET /health`` (its request must go through the same prefix), takes screenshots,
and checks that the pages loaded nothing from any other origin, that nothing failed, and that no script threw.

:func:`rest_v1_gateway` serves ``http://127.0.0.1:<port>/<stage>/...`` by turning each request into the event
API Gateway REST (v1) sends a proxy integration (``path`` without the stage; built by
``tests.unit.api.lambda_events.rest_v1``) and the function's answer back into HTTP, like a REST API with no
binary media types: a base64 body reaches the client as base64 text.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.integration.api.browser import Page
from tests.unit.api.lambda_events import rest_v1

HEALTH_OPERATION = "#operations-operations-health_health_get"
LIVE_STATUS = ".live-responses-table tbody .response-col_status"  # the status cell of the answer (not the header)


@dataclass(frozen=True)
class ServedApi:
    """What the pages must show: the served model's features, the number of operations, the record's title."""

    features: list[str]
    operations: int
    record_title: str  # the title of ``#/components/schemas/Record`` (e.g. ``BreastCancerRecord``)


def served_api(base_url: str, headers: dict[str, str] | None = None) -> ServedApi:
    """Ask the API itself (``GET /model``, ``GET /openapi.json``) at ``base_url``."""
    with httpx.Client(base_url=base_url.rstrip("/"), headers=headers or {}, timeout=120) as http:
        model = http.get("/model")
        model.raise_for_status()
        schema = http.get("/openapi.json")
        schema.raise_for_status()
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    operations = sum(1 for item in schema.json()["paths"].values() for method in item if method in methods)
    record = schema.json()["components"]["schemas"]["Record"]
    features = [f["name"] for f in model.json()["dataset_spec"]["features"]]
    return ServedApi(features, operations, str(record.get("title", "Record")))


def _record_schema(title: str) -> str:
    """A JS expression: Swagger UI's top-level schema entry titled ``title`` (OpenAPI 3.1: JSON Schema 2020-12)."""
    return (
        "[...document.querySelectorAll('.models article[data-json-schema-level=\"0\"]')].find(a => "
        f"(a.querySelector('.json-schema-2020-12__title') || {{}}).innerText === {json.dumps(title)})"
    )


def _missing_in(features: list[str], element: str) -> str:
    """A JS expression: the features whose names the rendered text of ``element`` (an expression) lacks."""
    return (
        f"(() => {{ const el = {element}; const text = el ? el.innerText : '';"
        f" return {json.dumps(features)}.filter(name => !text.includes(name)); }})()"
    )


def check_docs(page: Page, base: str, served: ServedApi, shots: Path, label: str) -> list[Path]:
    """Render /docs and /redoc under ``base`` (the URL of the API's root as a browser sees it); return screenshots."""
    base = base.rstrip("/")
    taken = []

    page.goto(f"{base}/docs")
    page.wait_for(
        f"document.querySelectorAll('#swagger-ui .opblock').length >= {served.operations}",
        120,
        f"Swagger UI at {base}/docs to render {served.operations} operations",
    )
    record = _record_schema(served.record_title)
    page.wait_for(f"!!{record}", 30, f"the {served.record_title} schema in Swagger UI's list")
    page.evaluate(f"{record}.querySelector('.json-schema-2020-12-expand-deep-button').click(), true")
    page.wait_for(
        f"{_missing_in(served.features, record)}.length === 0",
        30,
        f"every feature of the model ({len(served.features)}) in the rendered {served.record_title} schema",
    )
    server = page.evaluate("document.querySelector('.servers select').value")
    assert server == base, f"Swagger UI sends requests to {server!r}, not to the API at {base!r}"
    # Try it out on GET /health: the request must reach the API through the same prefix.
    page.evaluate(f"document.querySelector('{HEALTH_OPERATION} .opblock-summary-control').click(), true")
    page.wait_for(f"!!document.querySelector('{HEALTH_OPERATION} .try-out__btn')", 30, "the Try it out button")
    page.evaluate(f"document.querySelector('{HEALTH_OPERATION} .try-out__btn').click(), true")
    page.wait_for(f"!!document.querySelector('{HEALTH_OPERATION} .execute')", 30, "the Execute button")
    page.evaluate(f"document.querySelector('{HEALTH_OPERATION} .execute').click(), true")
    status = page.wait_for(
        f"(document.querySelector('{HEALTH_OPERATION} {LIVE_STATUS}') || {{}}).innerText",
        60,
        "the answer of Try it out on GET /health",
    )
    assert str(status).strip().startswith("200"), status
    request_url = page.evaluate(f"document.querySelector('{HEALTH_OPERATION} .request-url pre').innerText")
    assert request_url == f"{base}/health", request_url
    page.evaluate(f"{record}.scrollIntoView(), true")
    taken.append(page.screenshot(shots / f"swagger-ui-{label}.png"))

    page.goto(f"{base}/redoc")
    page.wait_for(
        f"document.querySelectorAll('[data-section-id*=\"operation/\"]').length >= {served.operations}",
        120,
        f"ReDoc at {base}/redoc to render {served.operations} operations",
    )
    page.wait_for(
        _missing_in(served.features, "document.querySelector('#redoc')") + ".length === 0",
        30,
        f"every feature of the model ({len(served.features)}) in ReDoc's request schema",
    )
    taken.append(page.screenshot(shots / f"redoc-{label}.png"))

    assert not page.foreign_requests(base), f"requests to other origins: {page.foreign_requests(base)}"
    assert not page.failures(), page.diagnostics()
    assert not page.errors(), page.diagnostics()
    statuses = page.responses()
    bad = {u: s for u, s in statuses.items() if s >= 400}
    assert not bad, f"failed responses: {bad}"
    for path in taken:
        print(f"screenshot ({label}): {path}")
    for url in page.blocked_by_policy():
        print(f"blocked by the page's Content-Security-Policy ({label}): {url}")
    return taken


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@contextlib.contextmanager
def rest_v1_gateway(invoke: Invoke, stage: str = "prod") -> Iterator[str]:
    """Serve ``/<stage>/...`` on a free port of 127.0.0.1 through ``invoke`` (event -> Lambda HTTP response).

    Yields the stage's base URL (``http://127.0.0.1:<port>/<stage>``). One request at a time, like one
    execution environment; anything outside the stage answers 403 as API Gateway does.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def _forward(self) -> None:
            url = urlsplit(self.path)
            prefix = f"/{stage}"
            if not (url.path == prefix or url.path.startswith(prefix + "/")):
                self._reply(403, {"content-type": "application/json"}, b'{"message":"Missing Authentication Token"}')
                return
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else None
            event = rest_v1(
                self.command,
                url.path[len(prefix) :] or "/",
                body,
                headers=dict(self.headers.items()),
                query=dict(parse_qsl(url.query)) or None,
                stage=stage,
            )
            answer = invoke(event)
            headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
            for key, values in (answer.get("multiValueHeaders") or {}).items():
                headers[key.lower()] = ", ".join(values)
            text = answer.get("body") or ""
            # No binary media types: a base64 body is sent as the base64 text itself.
            self._reply(int(answer["statusCode"]), headers, text.encode())

        def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="rest-v1-gateway", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{stage}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
