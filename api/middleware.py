"""One pure ASGI middleware that times every request, records its metrics and writes its JSON log line.

Written against the raw ASGI interface (not Starlette's ``BaseHTTPMiddleware``, which costs a task and
a stream per request). Endpoints put the model version and the number of records they served into the
ASGI scope (:data:`MODEL_VERSION_KEY`, :data:`RECORDS_KEY`) for the log line; for other requests the line
carries the version served when the request ended.

It also answers ``HEAD`` without a body wherever the route allows it: uvicorn drops the body of a HEAD
answer itself, Mangum does not, so the middleware does it for both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import safe_text
from api.metrics import ApiMetrics

MODEL_VERSION_KEY = "mlops.model_version"
RECORDS_KEY = "mlops.records"
request_log = logging.getLogger("api.request")


class RequestObserver:
    """Measure each HTTP request from its start to its last response byte; count, time and log it."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ApiMetrics,
        served_version: Callable[[], str | None] = lambda: None,
        log_requests: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.served_version = served_version
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: non-HTTP scopes (lifespan) pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        head = scope["method"] == "HEAD"

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}  # Content-Length stays that of the GET answer
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"]
            route = getattr(scope.get("route"), "path", None)  # the template (/models/{name}/predict) once routed
            self.metrics.observe_request(route if isinstance(route, str) else path, scope["method"], status, seconds)
            if self.log_requests:
                fields: dict[str, Any] = {
                    "method": safe_text(scope["method"], 20),
                    "path": safe_text(path, 200),
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "model_version": scope.get(MODEL_VERSION_KEY) or self.served_version(),
                }
                if RECORDS_KEY in scope:
                    fields["records"] = scope[RECORDS_KEY]
                request_log.info("request", extra={"fields": fields})
