"""Shared by the platform's DAG files: default task arguments, the active dataset specs and their Assets.

Each DAG file loops over :func:`active_specs` and generates one DAG per dataset spec (Airflow's dynamic-DAG
pattern), named by ``pipeline_ids``. The DAG processor re-runs each file every
``[dag_processor] min_file_process_interval`` seconds whether or not it changed, so a spec added to (or
fixed in) ``ml/datasets/`` gets its DAGs at the next parse, without a restart.

Airflow puts the DAG folder on ``sys.path``, so DAG files import this module as ``common``.
``.airflowignore`` keeps the DAG processor from parsing it as a DAG file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import pendulum
from airflow.sdk import Asset
from pipeline_ids import processed_asset_name, processed_asset_uri

from ml import spec as dataset_specs
from ml.settings import MLSettings
from ml.spec import DatasetSpec, SpecError

log = logging.getLogger(__name__)

SETTINGS = MLSettings()
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

# Every task talks to S3, MLflow or Postgres, so every task retries with exponential back-off.
DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
}


@dataclass(frozen=True)
class ActiveSpecs:
    """The active datasets: the specs that load, and the error of each one that does not."""

    specs: list[DatasetSpec] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def active_specs(settings: MLSettings | None = None) -> ActiveSpecs:
    """Load every active spec (``MLOPS_DATASETS``); a broken one is logged and reported, never raised.

    An unknown name in ``MLOPS_DATASETS`` is a configuration error of the whole set: it raises, and Airflow
    shows it as the import error of each DAG file.
    """
    loaded = ActiveSpecs()
    for name in (settings or SETTINGS).active_datasets():
        try:
            loaded.specs.append(dataset_specs.get_spec(name))
        except SpecError as exc:
            log.error("dataset spec %r does not load, its DAGs are not generated: %s", name, exc)
            loaded.errors[name] = str(exc)
    return loaded


def processed_asset(dataset: str) -> Asset:
    """The Asset that the ETL of ``dataset`` updates and that schedules its training DAG."""
    return Asset(name=processed_asset_name(dataset), uri=processed_asset_uri(SETTINGS.lake_bucket, dataset))


def dag_tags(spec: DatasetSpec, kind: str) -> list[str]:
    """Tags of a generated DAG: the platform, its kind (etl/training), the dataset and the task type."""
    return ["mlops", kind, spec.name, spec.task.value]


def spec_doc(spec: DatasetSpec, pipeline_doc: str) -> str:
    """A generated DAG's doc_md: what the dataset is and how its models are judged, then the pipeline."""
    metric = spec.metric
    threshold = spec.min_champion_score
    floor = "any first model" if threshold is None else f"the first model needs {metric.name} {threshold:g}"
    return (
        f"## {spec.title} (`{spec.name}`)\n\n{spec.description}\n\n"
        f"* task: **{spec.task.value}**; target `{spec.target.name}`\n"
        f"* metric: **{metric.name}** ({metric.title}, {'higher' if metric.greater_is_better else 'lower'} "
        f"is better); gate: {floor}, a challenger must beat the champion by {spec.promotion_margin:g}\n"
        f"* registered model: `{spec.registered_model}`\n\n{pipeline_doc}"
    )
