"""Shared by the platform's DAG files: default task arguments and the Asset that links ETL and training.

Airflow puts the DAG folder on ``sys.path``, so DAG files import this module as ``common``.
``.airflowignore`` keeps the DAG processor from parsing it as a DAG file.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset

from ml.settings import MLSettings

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

# Updated by the ETL's split task; schedules the training DAG.
PROCESSED = Asset(
    name=f"processed_{SETTINGS.dataset}",
    uri=f"s3://{SETTINGS.lake_bucket}/processed/{SETTINGS.dataset}/",
)
