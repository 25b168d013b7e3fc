"""DAG integrity: the DAG files generate one ETL and one training DAG per active dataset spec, following the
platform's conventions; a broken spec yields a failing placeholder DAG and leaves the others alone."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
sys.path.insert(0, str(DAGS))

from airflow.models.dagbag import DagBag  # noqa: E402

from dags.pipeline_ids import broken_spec_dag_id, etl_dag_id, processed_asset_name, training_dag_id  # noqa: E402
from ml import spec as spec_module  # noqa: E402
from ml.settings import MLSettings  # noqa: E402
from ml.spec import available_datasets, get_spec  # noqa: E402

DATASETS = available_datasets()
SHIPPED_SPECS = spec_module.DATASETS_DIR


def test_the_shipped_specs_are_the_active_set_by_default() -> None:
    assert MLSettings(datasets="all").active_datasets() == DATASETS and DATASETS


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_and_each_spec_gets_its_two_dags(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {dag_id for d in DATASETS for dag_id in (etl_dag_id(d), training_dag_id(d))}


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("kind", ["etl", "training"])
def test_dag_conventions(dagbag: DagBag, dataset: str, kind: str) -> None:
    spec = get_spec(dataset)
    dag = dagbag.dags[etl_dag_id(dataset) if kind == "etl" else training_dag_id(dataset)]
    assert dag.tags and set(dag.tags) == {"mlops", kind, dataset, spec.task.value}
    assert dag.doc_md and len(dag.doc_md) > 200
    for text in (spec.title, spec.task.value, spec.metric.name, spec.registered_model):
        assert text in dag.doc_md, text
    assert spec.title in (dag.description or "")
    assert not dag.catchup and dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "mlops", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id


@pytest.mark.parametrize("dataset", DATASETS)
def test_etl_publishes_the_asset_that_schedules_its_own_training_only(dagbag: DagBag, dataset: str) -> None:
    etl, training = dagbag.dags[etl_dag_id(dataset)], dagbag.dags[training_dag_id(dataset)]
    assert type(etl.timetable).__name__ == "NullTimetable"  # triggered, never scheduled
    assert [t.task_id for t in etl.topological_sort()] == ["extract", "validate", "split"]
    outlets = etl.get_task("split").outlets
    assert [o.name for o in outlets] == [processed_asset_name(dataset)]
    assert outlets[0].uri == f"s3://{MLSettings().lake_bucket}/processed/{dataset}"
    assert list(training.timetable.asset_condition.objects) == [outlets[0]]


@pytest.mark.parametrize("dataset", DATASETS)
def test_training_maps_tuning_over_workers_then_gates(dagbag: DagBag, dataset: str) -> None:
    training = dagbag.dags[training_dag_id(dataset)]
    tune = training.get_task("tune")
    assert tune.__class__.__name__.endswith("MappedOperator")
    assert {t.task_id for t in tune.downstream_list} == {"finish"}
    assert {t.task_id for t in training.get_task("gate").upstream_list} == {"finish", "prepare"}
    assert training.params["n_trials"] >= 1 and training.params["workers"] >= 1


def test_the_tasks_call_the_steps_with_their_own_dataset(dagbag: DagBag, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each generated DAG's tasks are bound to its dataset (no late binding to the loop's last spec)."""
    import ml.steps

    seen: list[str] = []

    class Manifest:
        def model_dump(self, mode: str) -> dict:
            return {}

    monkeypatch.setattr(ml.steps, "extract_step", lambda dataset: seen.append(dataset) or Manifest())
    for dataset in DATASETS:
        dagbag.dags[etl_dag_id(dataset)].get_task("extract").python_callable()
    assert seen == DATASETS


# ---------------------------------------------------------------------------------------------------------
# A broken spec, a chosen subset, an unknown name
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def specs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A specs directory of the test's own (a copy of the shipped specs) that the DAG files read."""
    for path in SHIPPED_SPECS.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    uncached = get_spec.__wrapped__
    monkeypatch.setattr(spec_module, "available_datasets", lambda directory=tmp_path: available_datasets(directory))
    monkeypatch.setattr(spec_module, "get_spec", lambda name, directory=tmp_path: uncached(name, directory))
    yield tmp_path


def test_a_broken_spec_gets_a_failing_placeholder_and_the_others_keep_their_dags(specs_dir: Path) -> None:
    (specs_dir / "zz_broken.yaml").write_text("name: zz_broken\ntitle: Broken\ntask: binary\n")
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    expected = {dag_id for d in DATASETS for dag_id in (etl_dag_id(d), training_dag_id(d))}
    assert set(bag.dag_ids) == expected | {broken_spec_dag_id("zz_broken")}
    placeholder = bag.dags[broken_spec_dag_id("zz_broken")]
    assert "zz_broken" in placeholder.tags and "broken-spec" in placeholder.tags
    assert "invalid dataset spec" in (placeholder.description or "") and "source" in placeholder.doc_md
    with pytest.raises(spec_module.SpecError, match=r"(?s)source.*python -m ml validate zz_broken"):
        placeholder.get_task("report_spec_error").python_callable()


def test_a_spec_added_later_gets_its_dags_at_the_next_parse(specs_dir: Path) -> None:
    """The DAG files read the specs directory on every parse: a new file needs no restart."""
    shipped = sorted(specs_dir.glob("*.yaml"))[0]
    text = shipped.read_text().replace(f"name: {shipped.stem}\n", "name: added_later\n", 1)
    (specs_dir / "added_later.yaml").write_text(text)
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {etl_dag_id("added_later"), training_dag_id("added_later")} <= set(bag.dag_ids)


def test_mlops_datasets_selects_the_active_subset(monkeypatch: pytest.MonkeyPatch) -> None:
    import common

    monkeypatch.setattr(common, "SETTINGS", MLSettings(datasets=DATASETS[0]))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {etl_dag_id(DATASETS[0]), training_dag_id(DATASETS[0])}


def test_an_unknown_name_in_mlops_datasets_is_an_import_error_of_every_dag_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import common

    monkeypatch.setattr(common, "SETTINGS", MLSettings(datasets=f"{DATASETS[0]},no_such_dataset"))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.dag_ids == []
    assert {Path(f).name for f in bag.import_errors} == {"mlops_etl.py", "mlops_training.py", "mlops_spec_errors.py"}
    assert all("no_such_dataset" in e and "MLOPS_DATASETS" in e for e in bag.import_errors.values())
