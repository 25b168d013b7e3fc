"""The catalog's dataset wiring: the active set, the API's default model, the data directory of Airflow."""

from __future__ import annotations

import pytest

from infra import catalog
from infra.credentials import Credentials
from ml.settings import MLSettings
from ml.spec import SpecError, available_datasets, get_spec

pytestmark = pytest.mark.unit

TOPO = catalog.Topology.local()
PATHS = catalog.AirflowPaths(home="/h", dags="/d", passwords_file="/p")


def settings(**values: str) -> MLSettings:
    return MLSettings(_env_prefix="MLOPS_TESTS_IGNORED_", **values)  # type: ignore[call-arg]


def test_the_active_set_defaults_to_every_spec_and_must_contain_the_default() -> None:
    shipped = available_datasets()
    assert catalog.active_datasets(settings()) == shipped
    assert catalog.active_datasets(settings(datasets=f" {shipped[0]} ", dataset=shipped[0])) == [shipped[0]]
    with pytest.raises(SpecError, match="unknown dataset"):
        catalog.active_datasets(settings(datasets="nope"))
    with pytest.raises(SpecError, match=r"MLOPS_DATASET='other' is not active.*add it to MLOPS_DATASETS"):
        catalog.active_datasets(settings(datasets=shipped[0], dataset="other"))


def test_the_api_serves_the_default_model_on_its_unnamed_routes() -> None:
    default = available_datasets()[0]
    env = catalog.api_env(TOPO, Credentials.generate(), settings(dataset=default))
    assert env["MLOPS_API_DEFAULT_MODEL"] == default
    assert env["MLOPS_MODEL_NAME"] == get_spec(default).registered_model  # the single-model API's variable


def test_airflow_gets_the_active_set_and_a_data_dir_only_when_the_paths_name_one() -> None:
    creds = Credentials.generate()
    env = catalog.airflow_env(TOPO, creds, PATHS, settings(datasets="all"))
    assert env["MLOPS_DATASETS"] == "all" and env["MLOPS_DATASET"] == MLSettings.model_fields["dataset"].default
    assert env.get(catalog.DATA_DIR_ENV) == MLSettings().to_env().get(catalog.DATA_DIR_ENV)  # the ML settings'
    docker = catalog.AirflowPaths(home="/h", dags="/d", passwords_file="/p", data="/opt/mlops/data")
    assert catalog.airflow_env(TOPO, creds, docker, settings())[catalog.DATA_DIR_ENV] == "/opt/mlops/data"


def test_the_dag_processor_reparses_every_file_often() -> None:
    """DAGs of a spec added while the stack runs appear at the next parse: files are re-run unchanged."""
    env = catalog.airflow_env(TOPO, Credentials.generate(), PATHS, settings())
    assert int(env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"]) <= 30
    assert int(env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"]) <= 30
