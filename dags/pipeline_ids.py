"""Names of the per-dataset pipelines: DAG ids and Asset names, defined once.

Every active dataset spec gets an ETL DAG ``etl_<dataset>`` and a training DAG ``training_<dataset>``,
linked by the Asset ``processed_<dataset>``; a spec that fails to load gets ``broken_spec_<dataset>``
instead. The DAG files (as ``pipeline_ids``, the DAG folder is on ``sys.path``), ``make up``, the Pulumi
program and the tests (as ``dags.pipeline_ids``) all take the names from here. Pure Python: no Airflow.
"""

from __future__ import annotations

ETL_PREFIX = "etl_"
TRAINING_PREFIX = "training_"
BROKEN_SPEC_PREFIX = "broken_spec_"
PROCESSED_PREFIX = "processed_"


def etl_dag_id(dataset: str) -> str:
    """Id of the ETL DAG of ``dataset`` (triggered by hand or by ``make up``)."""
    return f"{ETL_PREFIX}{dataset}"


def training_dag_id(dataset: str) -> str:
    """Id of the training DAG of ``dataset`` (scheduled on its processed Asset)."""
    return f"{TRAINING_PREFIX}{dataset}"


def broken_spec_dag_id(dataset: str) -> str:
    """Id of the placeholder DAG that reports why the spec of ``dataset`` does not load."""
    return f"{BROKEN_SPEC_PREFIX}{dataset}"


def processed_asset_name(dataset: str) -> str:
    """Name of the Asset the ETL of ``dataset`` updates and its training DAG is scheduled on."""
    return f"{PROCESSED_PREFIX}{dataset}"


def processed_asset_uri(lake_bucket: str, dataset: str) -> str:
    """URI of that Asset: the processed zone of ``dataset`` in the lake."""
    return f"s3://{lake_bucket}/processed/{dataset}"


def pipeline(dataset: str) -> tuple[str, str]:
    """The DAG ids of one dataset's pipeline: ``(ETL DAG, training DAG)``."""
    return etl_dag_id(dataset), training_dag_id(dataset)
