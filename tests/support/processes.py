"""The server processes that tests and benchmarks start: where they listen, and stopping them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout`` seconds, then SIGKILL it; nothing if it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class ServerProcess:
    """A server started as a process on ``127.0.0.1:<port>``, logging to ``log``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); its data stays."""
        stop_process(self.proc)
