"""The embedded stack's error and the log excerpt its messages carry."""

from __future__ import annotations

import os
from pathlib import Path

LOG_TAIL_LINES = 25


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says which service, what and where to look."""


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
