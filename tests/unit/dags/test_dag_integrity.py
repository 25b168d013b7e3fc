"""DAG integrity: every DAG file imports without error and follows the platform's conventions."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
sys.path.insert(0, str(DAGS))

from airflow.models.dagbag import DagBag  # noqa: E402


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"mlops_etl", "mlops_training"}


@pytest.mark.parametrize("dag_id", ["mlops_etl", "mlops_training"])
def test_dag_conventions(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.tags and "mlops" in dag.tags
    assert not dag.catchup
    for task in dag.tasks:
        assert task.owner == "mlops", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id


def test_etl_publishes_the_asset_that_schedules_training(dagbag: DagBag) -> None:
    etl, training = dagbag.dags["mlops_etl"], dagbag.dags["mlops_training"]
    assert [t.task_id for t in etl.topological_sort()] == ["extract", "validate", "split"]
    outlets = etl.get_task("split").outlets
    assert len(outlets) == 1
    assert list(training.timetable.asset_condition.objects) == [outlets[0]]


def test_training_maps_tuning_over_workers_then_gates(dagbag: DagBag) -> None:
    training = dagbag.dags["mlops_training"]
    tune = training.get_task("tune")
    assert tune.__class__.__name__.endswith("MappedOperator")
    assert {t.task_id for t in tune.downstream_list} == {"finish"}
    assert {t.task_id for t in training.get_task("gate").upstream_list} == {"finish", "prepare"}
    assert training.params["n_trials"] >= 1 and training.params["workers"] >= 1
