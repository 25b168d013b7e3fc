"""Pulumi runs the program with the uv toolchain of Pulumi.yaml, which needs ``uv`` on PATH.

``make`` bootstraps uv into ``.tools/bin`` when it is not installed, which is not on the user's PATH; the
``make pulumi-*`` targets put the uv that make uses on Pulumi's PATH. The Pulumi CLI cannot be installed
here, so a stand-in ``pulumi`` on PATH records what the real one would see: whether ``uv`` resolves.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.infra.pulumi_harness import REPO

pytestmark = pytest.mark.unit


def test_the_program_runs_with_the_uv_toolchain() -> None:
    options = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["runtime"]["options"]
    assert options == {"toolchain": "uv", "virtualenv": ".venv"}


@pytest.mark.parametrize("verb", ["preview", "up", "destroy"])
def test_make_pulumi_targets_put_uv_on_pulumi_path(tmp_path: Path, verb: str) -> None:
    stub = tmp_path / "pulumi"
    stub.write_text('#!/bin/sh\necho "uv=$(command -v uv)"\necho "args=$*"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    # A user's PATH without uv: the stand-in pulumi and the system's basics only.
    path = os.pathsep.join([str(tmp_path), "/usr/bin", "/bin"])
    assert not any(Path(d, "uv").exists() for d in path.split(os.pathsep))
    done = subprocess.run(
        [shutil.which("make") or "make", "-o", "venv", "-o", "lambda-zip", f"pulumi-{verb}", "ARGS=--yes"],
        cwd=REPO,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("uv=", "args=")))
    assert seen["uv"] and os.access(seen["uv"], os.X_OK), done.stdout
    assert seen["args"] == f"{verb} --stack dev --yes"


def test_make_pulumi_targets_explain_a_missing_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        ["make", "-o", "venv", "-o", "lambda-zip", "pulumi-preview"],
        cwd=REPO,
        env={**os.environ, "PATH": os.pathsep.join([str(tmp_path), "/usr/bin", "/bin"])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "the Pulumi CLI is not installed" in done.stdout + done.stderr
