"""Helpers of the stack's integration tests (not fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.local import StackSettings


def settings_env(settings: StackSettings) -> dict[str, str]:
    """``MLOPS_STACK_*`` variables that make the CLI address the same stack as ``settings``."""
    return {f"MLOPS_STACK_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}


def cli(settings: StackSettings, *args: str, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``python -m infra.local <args>`` against the stack of ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_STACK_")} | settings_env(settings)
    r = subprocess.run(
        [sys.executable, "-m", "infra.local", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    return r.returncode, r.stdout, r.stderr


def text_files(root: Path) -> list[Path]:
    """Every regular file under ``root``."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
