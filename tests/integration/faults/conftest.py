"""The fault suite's own isolated stack (one for the package): faults go there, never into the session stack.

It runs the project's DAGs with a trial budget large enough that a fault can land in the middle of the
``tune`` tasks, and has the ETL done once so that each test only runs the training DAG.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import Stack, StackSettings, allocate_ports
from tests.integration.faults import faults

REPO_DAGS = Path(__file__).resolve().parents[3] / "dags"
#: Enough trials that the search takes a while on two workers (the fault lands while `tune` runs).
TRIAL_BUDGET = "40"


@pytest.fixture(scope="package")
def fault_stack() -> Iterator[Stack]:
    """An isolated stack, up, with the ETL done; destroyed at the end whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="mlops-faults-", dir="/tmp"))
    root.chmod(0o711)  # Postgres runs as another OS user when we are root
    saved = {k: os.environ.get(k) for k in ("MLOPS_N_TRIALS",)}
    os.environ["MLOPS_N_TRIALS"] = TRIAL_BUDGET  # read by the stack's Airflow environment at `up`
    dags = root / "dags"
    shutil.copytree(REPO_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    stack = Stack(
        StackSettings(state_dir=root / "state", dags_folder=dags, **allocate_ports()),
        out=lambda msg: print(f"[faults] {msg}", flush=True),
    )
    try:
        stack.up()
        faults.run_dag(stack, faults.ETL_DAG, timeout_s=600)
        yield stack
    finally:
        if os.environ.get("MLOPS_FAULTS_KEEP_STACK"):  # to look at its logs after a failure
            print(f"[faults] keeping the stack in {root}: destroy it with MLOPS_STACK_STATE_DIR={root / 'state'} "
                  "python -m infra.local destroy")  # fmt: skip
        else:
            try:
                stack.destroy()
            finally:
                shutil.rmtree(root, ignore_errors=True)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
