"""The Lambda Runtime API emulator alone: a zip built here, run by awslambdaric (from .venv) behind it."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda.interop import LocalStackInterop
from infra.aws_lambda.runtime_api import (
    EXIT_ERROR_TYPE,
    TIMEOUT_ERROR_TYPE,
    LambdaProcess,
    RuntimeAPIServer,
    RuntimeInitError,
    runtime_command,
    runtime_environment,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

APP = """
import os
import sys
import time

print("init pid", os.getpid())


def handler(event, context):
    print("handling", event)
    if event.get("fail"):
        raise ValueError("bad input: " + str(event["fail"]))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(event["exit"])
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "env": os.environ.get("GREETING"),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
    }
"""

BROKEN = """
import package_that_does_not_exist  # noqa

def handler(event, context):
    return 1
"""


def _build_and_unzip(tmp_path: Path, files: dict[str, str]) -> Path:
    """Build a deployment zip like the project's build does, then unzip it as Lambda does."""
    archive = tmp_path / "function.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    code = tmp_path / "task"
    with zipfile.ZipFile(archive) as z:
        z.extractall(code)
    return code


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return _build_and_unzip(tmp_path, {"app.py": APP, "broken.py": BROKEN})


@pytest.fixture
def function(code_dir: Path, tmp_path: Path) -> Iterator[LambdaProcess]:
    with LambdaProcess(
        code_dir, "app.handler", env={"GREETING": "hi"}, timeout=2, log_path=tmp_path / "runtime.log"
    ) as fn:
        yield fn


def test_server_alone_with_a_runtime_started_by_hand(code_dir: Path) -> None:
    """The documented low-level API: RuntimeAPIServer(port=0), AWS_LAMBDA_RUNTIME_API=server.address."""
    with RuntimeAPIServer(port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        env = runtime_environment(code_dir, "app.handler", server.address, {"GREETING": "hi"})
        proc = subprocess.Popen(runtime_command("app.handler"), cwd=code_dir, env=env, stdout=subprocess.DEVNULL)
        try:
            server.wait_ready(timeout=20)
            result = server.invoke({"name": "x"}, timeout=5)
        finally:
            proc.terminate()
            proc.wait(5)
    assert not result.is_error, result.payload
    doc = result.json()
    assert doc["echo"] == {"name": "x"}
    assert doc["request_id"] == result.request_id
    assert doc["env"] == "hi"
    assert 0 < doc["remaining_ms"] <= 5000


def test_success_and_warm_reuse(function: LambdaProcess, code_dir: Path) -> None:
    function.wait_ready()
    first = function.invoke({"n": 1})
    second = function.invoke({"n": 2})
    assert not first.is_error and not second.is_error
    assert first.json()["echo"] == {"n": 1}
    assert second.json()["echo"] == {"n": 2}
    assert first.json()["pid"] == second.json()["pid"] == function.pid  # one process, warm
    assert first.json()["task_root"] == str(code_dir.resolve())
    assert second.duration_s < 1.0
    logs = function.logs()
    assert "init pid" in logs and "handling {'n': 2}" in logs


def test_handler_exception_is_an_error_payload(function: LambdaProcess) -> None:
    result = function.invoke({"fail": "x"})
    assert result.is_error
    assert result.error_type == "ValueError"
    doc = result.json()
    assert doc["errorType"] == "ValueError"
    assert doc["errorMessage"] == "bad input: x"
    assert doc["stackTrace"]
    assert not function.invoke({"ok": True}).is_error  # the environment survives


def test_init_error(code_dir: Path, tmp_path: Path) -> None:
    with LambdaProcess(code_dir, "broken.handler", log_path=tmp_path / "broken.log") as fn:
        with pytest.raises(RuntimeInitError) as excinfo:
            fn.wait_ready()
        assert excinfo.value.error_type == "Runtime.ImportModuleError"
        result = fn.invoke({})
    assert result.is_error
    assert result.error_type == "Runtime.ImportModuleError"
    assert "package_that_does_not_exist" in result.json()["errorMessage"]


def test_missing_handler_function_is_an_init_error(code_dir: Path, tmp_path: Path) -> None:
    with LambdaProcess(code_dir, "app.nope", log_path=tmp_path / "nope.log") as fn:
        result = fn.invoke({})
    assert result.is_error
    assert result.error_type == "Runtime.HandlerNotFound"


def test_timeout_replaces_the_runtime(function: LambdaProcess) -> None:
    function.wait_ready()
    old_pid = function.pid
    result = function.invoke({"sleep": 5}, timeout=0.5)
    assert result.is_error and result.timed_out and result.error_type == TIMEOUT_ERROR_TYPE
    assert "Task timed out after 0.50 seconds" in result.json()["errorMessage"]
    after = function.invoke({"n": 3})
    assert not after.is_error, after.payload
    assert after.json()["pid"] != old_pid


def test_runtime_exit_during_invocation(function: LambdaProcess) -> None:
    result = function.invoke({"exit": 3})
    assert result.is_error
    assert result.error_type == EXIT_ERROR_TYPE
    assert result.json()["errorMessage"] == "Runtime exited with error: exit status 3"
    assert not function.invoke({"n": 4}).is_error  # a new runtime process


def test_only_the_functions_environment_reaches_the_runtime(code_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_OF_THE_CALLER", "x")
    env = runtime_environment(code_dir, "app.handler", "127.0.0.1:1", {"A": 1, "B": None})
    assert "SECRET_OF_THE_CALLER" not in env
    assert env["A"] == "1" and "B" not in env
    assert env["PYTHONPATH"] == env["LAMBDA_TASK_ROOT"] == str(code_dir.resolve())
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:1"
    assert runtime_command("app.handler") == [sys.executable, "-m", "awslambdaric", "app.handler"]


class _FakeLocalStack(http.server.ThreadingHTTPServer):
    """Records the callbacks LocalStack's ExecutorEndpoint would receive."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.result = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append((self.path, body))
                if self.path.endswith(("/response", "/error")):
                    outer.result.set()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)


def test_localstack_interop_protocol(code_dir: Path, tmp_path: Path) -> None:
    """POST /invoke in; status/ready, invocations/<id>/logs and /response out, as LocalStack's init does."""
    upstream = _FakeLocalStack()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{upstream.server_address[1]}/_localstack_lambda/env1"
    interop = LocalStackInterop(endpoint, "env1", memory_size=256)
    fn = LambdaProcess(
        code_dir,
        "app.handler",
        log_path=tmp_path / "interop.log",
        on_ready=interop.report_ready,
        on_init_error=interop.report_init_error,
    )
    interop.start(fn)
    fn.start()
    try:
        fn.wait_ready()
        deadline = time.monotonic() + 10
        while not upstream.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream.calls[0][0] == "/_localstack_lambda/env1/status/env1/ready"
        request = {"invoke-id": "req-1", "invoked-function-arn": "arn:x", "payload": '{"k": 1}', "trace-id": "t"}
        import urllib.request

        with urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{interop.port}/invoke", data=json.dumps(request).encode(), method="POST"
            ),
            timeout=10,
        ) as r:
            assert r.status == 200
        assert upstream.result.wait(10)
    finally:
        fn.stop()
        interop.close()
        upstream.shutdown()
    paths = [path for path, _ in upstream.calls]
    assert paths[1:] == [
        "/_localstack_lambda/env1/invocations/req-1/logs",
        "/_localstack_lambda/env1/invocations/req-1/response",
    ]
    logs = json.loads(upstream.calls[1][1])["logs"]
    assert logs.startswith("START RequestId: req-1 Version: $LATEST")
    assert "init pid" in logs and "Memory Size: 256 MB" in logs
    response = json.loads(upstream.calls[2][1])
    assert response["echo"] == {"k": 1} and response["arn"] == "arn:x"


def test_servers_bind_the_first_free_port_of_a_range() -> None:
    from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda.runtime_api import bind_first_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        free = next(p for p in range(taken + 1, taken + 50) if _port_free(p))
        server = bind_first_free(lambda port: RuntimeAPIServer(port=port), [taken, free])
        try:
            assert server.port == free
            with pytest.raises(OSError, match="all 2 ports of the configured range are in use"):
                bind_first_free(lambda port: RuntimeAPIServer(port=port), [taken, free])
        finally:
            server.close()
    any_port = bind_first_free(lambda port: RuntimeAPIServer(port=port))
    assert any_port.port > 0
    any_port.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
