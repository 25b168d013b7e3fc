"""The AWS Lambda Runtime API for one execution environment (the local process behind it: ``lambda_process``).

Standard library only, Python >= 3.11: LocalStack's executor plugin imports it (Python 3.13) and so do the
project's tests (Python 3.11) to run a built Lambda zip the way Lambda does.

The protocol (Lambda Runtime API, version 2018-06-01)
-----------------------------------------------------
A Lambda runtime (here ``python -m awslambdaric <handler>``) finds the API in ``AWS_LAMBDA_RUNTIME_API``
(``host:port``) and loops over::

    GET  /2018-06-01/runtime/invocation/next              long poll; the body is the event, the headers
                                                          Lambda-Runtime-Aws-Request-Id, -Deadline-Ms,
                                                          -Invoked-Function-Arn, -Trace-Id, -Client-Context
    POST /2018-06-01/runtime/invocation/{id}/response     the handler's result              -> 202
    POST /2018-06-01/runtime/invocation/{id}/error        an error of the handler           -> 202
                                                          (type in Lambda-Runtime-Function-Error-Type)
    POST /2018-06-01/runtime/init/error                   the handler could not be loaded   -> 202

The runtime's first ``/next`` marks the end of its init phase ("ready"). An environment runs one
invocation at a time. Two outcomes are produced by the environment itself, as Lambda does:

* the function timeout: ``{"errorMessage": "<time> <id> Task timed out after 3.00 seconds"}``
  (error type ``Sandbox.Timedout``); the runtime process must then be replaced;
* the runtime process exits: ``{"errorMessage": "Runtime exited with error: exit status 1",
  "errorType": "Runtime.ExitError"}``.

Public API
----------
* :class:`RuntimeAPIServer` -- the HTTP server (threaded ``http.server``). ``RuntimeAPIServer(port=0)``,
  ``.address`` (the value of ``AWS_LAMBDA_RUNTIME_API``), ``.url``, ``.wait_ready()``,
  ``.invoke(event, timeout) -> InvokeResult``.
* ``lambda_process.LambdaProcess`` (the sibling module) -- a server plus ``python -m awslambdaric <handler>``
  started in the function's unzipped code directory; replaces the runtime after a timeout or an exit.
* :class:`InvokeResult`, :class:`RuntimeInitError`.

Example::

    with LambdaProcess(code_dir, "app.handler", timeout=3) as fn:
        result = fn.invoke({"name": "x"})
        assert not result.is_error, result.payload
        print(result.json(), fn.logs())
"""

from __future__ import annotations

import errno
import http.server
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

LOG = logging.getLogger(__name__)

API_PREFIX = "/2018-06-01/runtime"
DEFAULT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:local"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"
EXIT_ERROR_TYPE = "Runtime.ExitError"
DEFAULT_INIT_TIMEOUT_S = 20.0  # LocalStack's LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT default

_T = TypeVar("_T")

_INVOCATION_PATH = re.compile(rf"^{API_PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


@dataclass(frozen=True)
class InvokeResult:
    """Outcome of one invocation: the bytes the runtime posted, and whether they are an error."""

    request_id: str
    payload: bytes
    is_error: bool
    error_type: str | None = None
    duration_s: float = 0.0

    def json(self) -> Any:
        """The payload decoded as JSON (Lambda payloads are JSON documents)."""
        return json.loads(self.payload or b"null")

    @property
    def timed_out(self) -> bool:
        """True if the function timeout ended the invocation."""
        return self.error_type == TIMEOUT_ERROR_TYPE


class RuntimeInitError(RuntimeError):
    """The runtime failed during its init phase (it posted ``/init/error`` or exited before ``/next``)."""

    def __init__(self, payload: bytes, error_type: str | None) -> None:
        super().__init__(f"Lambda runtime init failed ({error_type}): {payload[:2000].decode(errors='replace')}")
        self.payload = payload
        self.error_type = error_type


def bind_first_free(factory: Callable[[int], _T], ports: Iterable[int] | None = None) -> _T:
    """``factory(port)`` with the first port of ``ports`` that is free (``factory(0)``: any port, if None).

    ``factory`` builds a server that binds in its constructor (``http.server`` does); a port taken meanwhile
    (``EADDRINUSE``, e.g. by a concurrently starting environment) moves on to the next one. OSError when
    every port is taken.
    """
    if ports is None:
        return factory(0)
    tried = 0
    for port in ports:
        tried += 1
        try:
            return factory(port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"all {tried} ports of the configured range are in use")


def error_payload(message: str, error_type: str | None = None) -> bytes:
    """A Lambda error document (``errorMessage`` and, when given, ``errorType``)."""
    doc: dict[str, Any] = {"errorMessage": message}
    if error_type:
        doc["errorType"] = error_type
    return json.dumps(doc).encode()


def _error_type_of(payload: bytes) -> str | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    return doc.get("errorType") if isinstance(doc, dict) else None


def _encode_event(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    return json.dumps(event).encode()


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    function_arn: str
    deadline_ms: int
    trace_id: str | None
    client_context: str | None
    done: threading.Event = field(default_factory=threading.Event)
    result: InvokeResult | None = None
    started: float = field(default_factory=time.monotonic)


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: the runtime's native client (libcurl) reuses its connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("runtime api: " + format, *args)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", (headers or {}).get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != f"{API_PREFIX}/invocation/next":
            self._reply(404, error_payload(f"unknown path {self.path}", "NotFound"))
            return
        invocation = self.server.api._next_invocation()
        if invocation is None:  # the server is closing: the runtime will exit
            self.close_connection = True
            self._reply(503, error_payload("runtime api is shutting down", "ServiceUnavailable"))
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        }
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        self._reply(200, invocation.payload, headers)

    def do_POST(self) -> None:
        body = self._body()
        error_type = self.headers.get(ERROR_TYPE_HEADER)
        if self.path == f"{API_PREFIX}/init/error":
            self.server.api._init_failed(body or error_payload("init error", error_type), error_type)
            self._reply(202, b'{"status":"OK"}')
            return
        match = _INVOCATION_PATH.match(self.path)
        if not match:
            self._reply(404, error_payload(f"unknown path {self.path}", "NotFound"))
            return
        is_error = match["kind"] == "error"
        if is_error and not body:
            body = error_payload(error_type or "Unhandled", error_type)
        if is_error and not error_type:
            error_type = _error_type_of(body)
        if self.server.api._complete(match["id"], body, is_error, error_type if is_error else None):
            self._reply(202, b'{"status":"OK"}')
        else:
            self._reply(400, error_payload("Invalid request ID", "InvalidRequestID"))


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeAPIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed after a timeout or at shutdown drops its connection: not worth a traceback on stderr.
        LOG.debug("runtime api: connection error from %s", client_address, exc_info=True)


class RuntimeAPIServer:
    """The Lambda Runtime API of one execution environment, served on ``host:port`` (0: a free port).

    ``on_ready`` is called once per runtime process when it asks for its first invocation; ``on_init_error``
    with the error document when its init fails. Both run on a server thread and must not block for long.
    Call :meth:`reset` before starting a replacement runtime process.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        function_arn: str = DEFAULT_FUNCTION_ARN,
        on_ready: Callable[[], None] | None = None,
        on_init_error: Callable[[bytes, str | None], None] | None = None,
    ) -> None:
        self.function_arn = function_arn
        self.on_ready = on_ready
        self.on_init_error = on_init_error
        self._lock = threading.Lock()
        self._invoke_lock = threading.Lock()
        self._closing = False
        self._generation = 0
        self._init_done = threading.Event()
        self._ready = False
        self._init_error: tuple[bytes, str | None] | None = None
        self._queue: queue.Queue[_Invocation | None] = queue.Queue()
        self._inflight: dict[str, _Invocation] = {}
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.api = self
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------- lifecycle
    @property
    def host(self) -> str:
        """Listening host."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """Listening port (the real one when constructed with port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> str:
        """``host:port``: the value of ``AWS_LAMBDA_RUNTIME_API`` for the runtime."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.address}"

    @property
    def is_ready(self) -> bool:
        """True once the current runtime asked for its first invocation."""
        return self._ready

    def start(self) -> RuntimeAPIServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="lambda-runtime-api", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; pending invocations fail and long polls are released."""
        with self._lock:
            self._closing = True
            for invocation in self._inflight.values():
                self._finish(invocation, error_payload("runtime api closed", "ServiceUnavailable"), True, None)
            self._inflight.clear()
        self._queue.put(None)
        self._init_done.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> RuntimeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget the current runtime (after a timeout or an exit) before a new runtime process starts."""
        with self._lock:
            self._generation += 1
            self._ready = False
            self._init_error = None
            self._init_done.clear()
            for invocation in self._inflight.values():
                self._finish(invocation, error_payload("runtime was reset", EXIT_ERROR_TYPE), True, EXIT_ERROR_TYPE)
            self._inflight.clear()
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    # ----------------------------------------------------------------------------------------------- waiting
    def wait_ready(self, timeout: float = DEFAULT_INIT_TIMEOUT_S) -> None:
        """Block until the runtime finished its init; raise RuntimeInitError if it failed, TimeoutError."""
        if not self._init_done.wait(timeout):
            raise TimeoutError(f"Lambda runtime did not finish its init within {timeout:.1f} s")
        if self._init_error is not None:
            raise RuntimeInitError(*self._init_error)
        if not self._ready:
            raise RuntimeError("runtime api closed before the runtime became ready")

    def invoke(
        self,
        event: Any,
        timeout: float = 3.0,
        *,
        request_id: str | None = None,
        function_arn: str | None = None,
        trace_id: str | None = None,
        client_context: str | None = None,
        init_timeout: float = DEFAULT_INIT_TIMEOUT_S,
    ) -> InvokeResult:
        """Invoke the function with ``event`` (dict/list: JSON-encoded; str/bytes: sent as is).

        ``timeout`` is the function timeout in seconds. Waits up to ``init_timeout`` for the runtime's init
        first; an init failure is returned as an error result (as Lambda returns it to the caller).
        """
        request_id = request_id or str(uuid.uuid4())
        with self._invoke_lock:
            start = time.monotonic()
            if not self._init_done.wait(init_timeout):
                return InvokeResult(
                    request_id,
                    error_payload(f"runtime did not become ready within {init_timeout:.1f} s", "Runtime.InitTimeout"),
                    True,
                    "Runtime.InitTimeout",
                    time.monotonic() - start,
                )
            with self._lock:
                if self._init_error is not None:
                    payload, error_type = self._init_error
                    return InvokeResult(request_id, payload, True, error_type, time.monotonic() - start)
                if self._closing:
                    raise RuntimeError("runtime api is closed")
                invocation = _Invocation(
                    request_id=request_id,
                    payload=_encode_event(event),
                    function_arn=function_arn or self.function_arn,
                    deadline_ms=int((time.time() + timeout) * 1000),
                    trace_id=trace_id,
                    client_context=client_context,
                )
                self._inflight[request_id] = invocation
                self._queue.put(invocation)
            if not invocation.done.wait(timeout):
                with self._lock:
                    if not invocation.done.is_set():
                        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                        message = f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds"
                        self._finish(invocation, error_payload(message), True, TIMEOUT_ERROR_TYPE)
                        self._inflight.pop(request_id, None)
            assert invocation.result is not None
            return invocation.result

    def runtime_exited(self, returncode: int) -> None:
        """Tell the server that the runtime process ended (fails its init or its current invocation)."""
        message = error_payload(f"Runtime exited with error: exit status {returncode}", EXIT_ERROR_TYPE)
        with self._lock:
            inflight = list(self._inflight.values())
            self._inflight.clear()
            for invocation in inflight:
                self._finish(invocation, message, True, EXIT_ERROR_TYPE)
        if not self._init_done.is_set():
            self._init_failed(message, EXIT_ERROR_TYPE)

    # ----------------------------------------------------------------------------------------------- handlers
    def _finish(self, invocation: _Invocation, payload: bytes, is_error: bool, error_type: str | None) -> None:
        invocation.result = InvokeResult(
            invocation.request_id, payload, is_error, error_type, time.monotonic() - invocation.started
        )
        invocation.done.set()

    def _next_invocation(self) -> _Invocation | None:
        with self._lock:
            first = not self._ready and self._init_error is None and not self._closing
            if first:
                self._ready = True
            generation = self._generation
        if first:
            self._init_done.set()
            if self.on_ready is not None:
                try:
                    self.on_ready()
                except Exception:
                    LOG.exception("on_ready callback failed")
        while True:
            try:
                invocation = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._closing or generation != self._generation:
                    return None
                continue
            if invocation is None:
                self._queue.put(None)  # release the other pollers too
                return None
            if generation != self._generation:  # a poll of a replaced runtime: leave it to the new one
                self._queue.put(invocation)
                return None
            if invocation.done.is_set():  # timed out before the runtime picked it up
                continue
            return invocation

    def _complete(self, request_id: str, payload: bytes, is_error: bool, error_type: str | None) -> bool:
        with self._lock:
            invocation = self._inflight.pop(request_id, None)
            if invocation is None:
                return False
            self._finish(invocation, payload, is_error, error_type)
            return True

    def _init_failed(self, payload: bytes, error_type: str | None) -> None:
        with self._lock:
            if self._init_done.is_set():
                return
            self._init_error = (payload, error_type)
        self._init_done.set()
        if self.on_init_error is not None:
            try:
                self.on_init_error(payload, error_type)
            except Exception:
                LOG.exception("on_init_error callback failed")
