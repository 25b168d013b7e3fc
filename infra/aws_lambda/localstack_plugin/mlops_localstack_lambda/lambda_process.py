"""A Lambda function as a local process: the Runtime API server plus ``python -m awslambdaric <handler>``.

Standard library only, Python >= 3.11 (see :mod:`.runtime_api`, whose server it runs). Example::

    with LambdaProcess(code_dir, "app.handler", timeout=3) as fn:
        result = fn.invoke({"name": "x"})
        assert not result.is_error, result.payload
        print(result.json(), fn.logs())
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .runtime_api import (
    DEFAULT_FUNCTION_ARN,
    DEFAULT_INIT_TIMEOUT_S,
    LOG,
    InvokeResult,
    RuntimeAPIServer,
)


def runtime_command(handler: str, python: str | os.PathLike[str] = sys.executable) -> list[str]:
    """Command line of the runtime: ``<python> -m awslambdaric <handler>``."""
    return [str(python), "-m", "awslambdaric", handler]


def runtime_environment(
    code_dir: str | os.PathLike[str],
    handler: str,
    api_address: str,
    env: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Environment of the runtime process: only the function's variables plus what the runtime needs.

    Nothing of the caller's environment leaks in except ``PATH`` (like a Lambda sandbox). The code
    directory comes first on ``sys.path`` (``PYTHONPATH``, ``LAMBDA_TASK_ROOT``); the interpreter's own
    site-packages (awslambdaric, boto3) follow, as ``/var/runtime`` does in Lambda.
    """
    result = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only in Lambda
    }
    result.update({k: str(v) for k, v in (env or {}).items() if v is not None})
    code = str(Path(code_dir).resolve())
    result.update(
        {
            "LAMBDA_TASK_ROOT": code,
            "PYTHONPATH": code,
            "_HANDLER": handler,
            "AWS_LAMBDA_RUNTIME_API": api_address,
        }
    )
    return result


class LambdaProcess:
    """One execution environment: a :class:`RuntimeAPIServer` and ``python -m awslambdaric <handler>``.

    The runtime runs in ``code_dir`` (the unzipped deployment package) with ``python`` (which must have
    ``awslambdaric`` installed) and the function's ``env``. Its stdout/stderr go to ``log_path`` (a file
    next to nothing else; default: ``<TMPDIR or code_dir's parent>/lambda-<pid>-<n>.log``). After a timeout or
    an exit the runtime process is replaced, as Lambda does; the next invocation waits for the new init.
    The Runtime API server listens on ``host:port`` (0: a free port).
    """

    _counter = 0

    def __init__(
        self,
        code_dir: str | os.PathLike[str],
        handler: str,
        *,
        python: str | os.PathLike[str] = sys.executable,
        env: Mapping[str, Any] | None = None,
        timeout: float = 3.0,
        init_timeout: float = DEFAULT_INIT_TIMEOUT_S,
        log_path: str | os.PathLike[str] | None = None,
        function_arn: str = DEFAULT_FUNCTION_ARN,
        on_ready: Callable[[], None] | None = None,
        on_init_error: Callable[[bytes, str | None], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.code_dir = Path(code_dir)
        self.handler = handler
        self.python = str(python)
        self.env = dict(env or {})
        self.timeout = timeout
        self.init_timeout = init_timeout
        if log_path is None:
            LambdaProcess._counter += 1
            base = Path(os.environ.get("TMPDIR") or self.code_dir.resolve().parent)
            log_path = base / f"lambda-{os.getpid()}-{LambdaProcess._counter}.log"
        self.log_path = Path(log_path)
        self.server = RuntimeAPIServer(
            host, port, function_arn=function_arn, on_ready=on_ready, on_init_error=on_init_error
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._stopping = False
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        """PID of the current runtime process."""
        return self._proc.pid if self._proc else None

    def max_memory_mb(self) -> int | None:
        """Peak resident memory of the current runtime process in MB (Linux ``VmHWM``), None if unknown."""
        pid = self.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024 + 1
        except (OSError, ValueError, IndexError):
            pass
        return None

    def start(self) -> LambdaProcess:
        """Start the server and the runtime process (does not wait for the init; see :meth:`wait_ready`)."""
        with self._lock:
            self.server.start()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._spawn()
        return self

    def _spawn(self) -> None:
        env = runtime_environment(self.code_dir, self.handler, self.server.address, self.env)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                runtime_command(self.handler, self.python),
                cwd=self.code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._proc = proc
        threading.Thread(target=self._watch, args=(proc,), name=f"lambda-runtime-{proc.pid}", daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        returncode = proc.wait()
        if not self._stopping and proc is self._proc:
            LOG.debug("Lambda runtime %s exited with %s", proc.pid, returncode)
            self.server.runtime_exited(returncode)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        """Replace the runtime process (a fresh init)."""
        with self._lock:
            self._kill()
            self.server.reset()
            if not self._stopping:
                self._spawn()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the runtime finished its init; raises RuntimeInitError or TimeoutError."""
        self.server.wait_ready(self.init_timeout if timeout is None else timeout)

    def invoke(self, event: Any, timeout: float | None = None, **kwargs: Any) -> InvokeResult:
        """Invoke once (see :meth:`RuntimeAPIServer.invoke`); ``timeout`` defaults to the function timeout."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.restart()  # the previous runtime exited (init error, crash): a new environment
        kwargs.setdefault("init_timeout", self.init_timeout)
        result = self.server.invoke(event, self.timeout if timeout is None else timeout, **kwargs)
        if result.timed_out:
            self.restart()
        return result

    def logs(self) -> str:
        """Everything the runtime processes printed so far."""
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def take_logs(self) -> str:
        """What the runtime printed since the previous call (the runtime writes before it posts a result)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self._log_offset += len(data)
        return data.decode(errors="replace")

    def stop(self) -> None:
        """Stop the runtime process and the server."""
        with self._lock:
            self._stopping = True
            self._kill()
            self.server.close()

    def __enter__(self) -> LambdaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
