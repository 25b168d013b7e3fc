"""Polling with a deadline: wait for a condition, or for an HTTP endpoint to answer."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    interval: float = 0.1,
    what: str | Callable[[], str] = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and return that.

    ``condition`` runs at least once, and once more at the deadline. An exception of a type in ``ignore``
    counts as "not yet"; any other exception propagates at once. After ``timeout`` seconds it raises an
    ``AssertionError`` that names ``what`` (a callable is asked at that time, e.g. for a log's tail) and the
    last value or ignored exception.
    """
    deadline = time.monotonic() + timeout
    last: str = "no call"
    while True:
        try:
            value = condition()
        except ignore as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = repr(value)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            name = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {name} (last: {last})")
        time.sleep(min(interval, remaining))


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Wait until ``url`` answers 2xx; fail early with the log's tail if ``proc`` exits.

    Raises ``RuntimeError`` when the process exits, ``TimeoutError`` (with the log's path) after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"process for {url} exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s" + (f" (log {log})" if log else ""))
