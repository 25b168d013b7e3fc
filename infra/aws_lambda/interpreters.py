"""Is this interpreter the Python version we need? (the zip's precompiler, LocalStack's environments)."""

from __future__ import annotations

import os
import subprocess


def python_mismatch(path: str, version: str) -> str | None:
    """None if ``path`` runs and is Python ``version`` (e.g. "3.12"); otherwise why not, in a few words."""
    if not os.path.exists(path):
        return "does not exist"
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"does not run ({e})"
    if out.returncode != 0:  # e.g. a pyenv shim for a version that is not selected
        first_line = next((line for line in (out.stderr or out.stdout).splitlines() if line.strip()), "")
        return f"exits with {out.returncode}: {first_line.strip()!r}"
    if out.stdout.strip() != version:
        return f"is Python {out.stdout.strip()}"
    return None
