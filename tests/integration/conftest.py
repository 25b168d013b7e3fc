"""Integration fixtures: one isolated embedded stack for the whole session.

The stack lives in a fresh directory under /tmp (short: supervisord's unix socket path is limited) on free
ports, SeaweedFS' internal ports included, so it runs next to a developer's stack on the default ports. It is
always destroyed at the end, also when start-up or a test fails. Its DAG folder holds the project's DAGs
(``dags/``) plus the tiny DAG below, so the stack's own tests do not depend on the project's DAGs.
:func:`trained_stack` runs what ``make up`` runs (every active dataset's ETL -> training -> champion served)
once per session, with a small trial budget (:data:`TRIAL_BUDGET`) so that all datasets train in minutes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import Stack, StackSettings, allocate_ports, quickstart
from infra.local.quickstart import QuickstartResult
from tests.integration.mlflow_operator import logged_in

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
#: Trials per search of the session stack (every dataset's; `make up` uses MLOPS_N_TRIALS' default).
TRIAL_BUDGET = 16
TEST_DAG_ID = "stack_test_dag"
TEST_DAG = f'''
"""Two tasks, no dependencies outside Airflow: proves the scheduler, the executor and the API work."""

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{TEST_DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def stack_test_dag():
    @task
    def produce():
        return 41

    @task
    def consume(x):
        assert x == 41
        return x + 1

    consume(produce())


stack_test_dag()
'''


@pytest.fixture(scope="session")
def test_dag_id() -> str:
    """Id of the tiny DAG in the test stack's DAG folder."""
    return TEST_DAG_ID


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="mlops-stack-", dir="/tmp"))
    root.chmod(0o711)  # Postgres runs as another OS user when we are root: it must traverse this directory
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings(stack_root: Path) -> StackSettings:
    dags = stack_root / "dags"
    shutil.copytree(REPO_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    (dags / f"{TEST_DAG_ID}.py").write_text(TEST_DAG)
    return StackSettings(state_dir=stack_root / "state", dags_folder=dags, **allocate_ports())


@pytest.fixture(scope="session")
def stack(stack_settings: StackSettings) -> Iterator[Stack]:
    """An isolated stack, up and healthy; destroyed at the end whatever happens."""
    saved = os.environ.get("MLOPS_N_TRIALS")
    os.environ["MLOPS_N_TRIALS"] = str(TRIAL_BUDGET)  # read by the stack's Airflow environment at every `up`
    s = Stack(stack_settings, out=lambda msg: print(f"[stack] {msg}", flush=True))
    try:
        timings = s.up()
        s.first_up_timings = timings  # type: ignore[attr-defined]
        with logged_in(s):  # the tests inspect MLflow as the stack's operator
            yield s
    finally:
        try:
            s.destroy()
        except Exception as e:  # still try to leave nothing behind
            print(f"[stack] destroy failed: {e}", file=sys.stderr)
            from infra.local.supervisor import stack_processes, terminate

            terminate(stack_processes(s.paths))
            shutil.rmtree(s.paths.root, ignore_errors=True)
        if saved is None:
            os.environ.pop("MLOPS_N_TRIALS", None)
        else:
            os.environ["MLOPS_N_TRIALS"] = saved


@pytest.fixture
def up_stack(stack: Stack) -> Stack:
    """The session stack, (re)started if a previous test left it down (``up`` is idempotent and fast)."""
    stack.up()
    return stack


@pytest.fixture(scope="session")
def test_dag_run(stack: Stack, test_dag_id: str) -> str:
    """A successful run of the tiny test DAG on the session stack (its task logs exist); returns its run id."""
    stack.up()
    run_id = stack.trigger_dag(test_dag_id)
    assert stack.wait_for_dag_run(test_dag_id, run_id, timeout=300) == "success"
    return run_id


@pytest.fixture(scope="session")
def trained_stack(stack: Stack) -> tuple[Stack, QuickstartResult]:
    """The session stack after what ``make up`` does: every dataset's DAG pair run, champions registered, served."""
    return stack, quickstart.run(stack, out=lambda msg: print(f"[up] {msg}", flush=True))
