"""LocalStack's side of an execution environment: the protocol its init binary speaks, in Python.

Standard library only. In Docker, LocalStack starts each environment as a container whose entrypoint is
its own init (a fork of the AWS Lambda Runtime Interface Emulator). That init talks to LocalStack over
HTTP; this module speaks the same protocol for a :class:`~.runtime_api.LambdaProcess`, so LocalStack's
``ExecutorEndpoint`` (the receiving side) is used unchanged:

LocalStack -> environment (``ExecutorEndpoint.invoke``)::

    POST http://<address>:<port>/invoke
         {"invoke-id": ..., "invoked-function-arn": ..., "payload": "<event as a string>", "trace-id": ...}
         -> 200 "OK" at once; the invocation then runs asynchronously.

environment -> LocalStack, under ``LOCALSTACK_RUNTIME_ENDPOINT``
(``http://<gateway>/_localstack_lambda/<executor id>``)::

    POST /status/<runtime id>/ready                 once, when the runtime finished its init
    POST /status/<runtime id>/error                 once, with the error document, if the init failed
    POST /invocations/<invoke id>/logs              {"logs": "START ... <output> END ... REPORT ..."}
    POST /invocations/<invoke id>/response          the result
    POST /invocations/<invoke id>/error             an error document (handler error, timeout, exit)

The init sends logs before the result, and so do we. As with LocalStack's init, the first invocation's logs
also carry what the runtime printed during its init.
"""

from __future__ import annotations

import http.server
import json
import logging
import math
import threading
import time
import urllib.request
from typing import Any

from .lambda_process import LambdaProcess
from .runtime_api import RuntimeInitError

LOG = logging.getLogger(__name__)

# Requests to LocalStack must not go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url: str, body: bytes, timeout: float = 30.0) -> int:
    """POST ``body`` (JSON) to ``url`` without proxies; returns the HTTP status."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with _OPENER.open(request, timeout=timeout) as response:
        return int(response.status)


class LocalStackInterop:
    """Receives LocalStack's ``/invoke`` for one environment and reports back to ``runtime_endpoint``.

    Create it, pass :meth:`report_ready` and :meth:`report_init_error` as the ``on_ready`` and
    ``on_init_error`` callbacks of the :class:`LambdaProcess`, then :meth:`start` it with that process.
    """

    def __init__(
        self,
        runtime_endpoint: str,
        runtime_id: str,
        *,
        function_version: str = "$LATEST",
        memory_size: int = 128,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.runtime_endpoint = runtime_endpoint.rstrip("/")
        self.runtime_id = runtime_id
        self.function_version = function_version
        self.memory_size = memory_size
        self.function: LambdaProcess | None = None
        self._status_sent = False
        self._status_lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Port on which LocalStack sends ``POST /invoke``."""
        return int(self._httpd.server_address[1])

    def start(self, function: LambdaProcess) -> None:
        """Serve ``/invoke`` for ``function`` in a background thread."""
        self.function = function
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="lambda-interop", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    # ---------------------------------------------------------------------------------------------- status
    def _send_status(self, status: str, body: bytes) -> None:
        with self._status_lock:
            if self._status_sent:  # LocalStack's startup future accepts one status per environment
                return
            self._status_sent = True
        try:
            post(f"{self.runtime_endpoint}/status/{self.runtime_id}/{status}", body)
        except Exception as e:
            LOG.warning("Could not send status %s of environment %s to LocalStack: %s", status, self.runtime_id, e)

    def report_ready(self) -> None:
        """The runtime finished its init (``on_ready`` callback)."""
        self._send_status("ready", b"{}")

    def report_init_error(self, payload: bytes, error_type: str | None) -> None:
        """The runtime's init failed (``on_init_error`` callback)."""
        self._send_status("error", payload)

    # ---------------------------------------------------------------------------------------------- invoke
    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        interop = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("interop: " + format, *args)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/invoke":
                    status, reply = 404, b"Not found"
                else:
                    try:
                        request = json.loads(body)
                        threading.Thread(
                            target=interop._invoke, args=(request,), name="lambda-interop-invoke", daemon=True
                        ).start()
                        status, reply = 200, b"OK"
                    except ValueError:
                        status, reply = 400, b"Invalid invoke request"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler

    def _invoke(self, request: dict[str, Any]) -> None:
        assert self.function is not None
        invoke_id = str(request.get("invoke-id", ""))
        function = self.function
        started = time.monotonic()
        try:
            result = function.invoke(
                request.get("payload", ""),
                request_id=invoke_id,
                function_arn=request.get("invoked-function-arn") or None,
                trace_id=request.get("trace-id") or None,
            )
            payload, is_error = result.payload, result.is_error
        except RuntimeInitError as e:
            payload, is_error = e.payload, True
        except Exception as e:  # an environment problem, not the function's: still answer LocalStack
            LOG.exception("Invocation %s failed in the local executor", invoke_id)
            payload, is_error = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}).encode(), True
        duration_ms = (time.monotonic() - started) * 1000
        max_memory = function.max_memory_mb()
        logs = (
            f"START RequestId: {invoke_id} Version: {self.function_version}\n"
            f"{function.take_logs()}"
            f"END RequestId: {invoke_id}\n"
            f"REPORT RequestId: {invoke_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.memory_size} MB\t"
            f"Max Memory Used: {max_memory if max_memory is not None else '?'} MB\t\n"
        )
        base = f"{self.runtime_endpoint}/invocations/{invoke_id}"
        try:
            post(f"{base}/logs", json.dumps({"logs": logs}).encode())
        except Exception as e:
            LOG.warning("Could not send the logs of invocation %s to LocalStack: %s", invoke_id, e)
        try:
            post(f"{base}/{'error' if is_error else 'response'}", payload)
        except Exception as e:
            LOG.error("Could not send the result of invocation %s to LocalStack: %s", invoke_id, e)
