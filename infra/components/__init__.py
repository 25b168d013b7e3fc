"""Pulumi components of the platform: one ComponentResource per service, rendered from the catalog.

:class:`MlopsPlatform` wires them together; ``infra/__main__.py`` only loads the config, creates it and
exports its outputs.
"""

from infra.components.airflow import Airflow
from infra.components.api import PredictionApi
from infra.components.config import StackConfig
from infra.components.lambda_api import LambdaApi
from infra.components.localstack import LocalStack
from infra.components.mlflow import Mlflow
from infra.components.object_store import ObjectStore
from infra.components.platform import MlopsPlatform
from infra.components.postgres import Postgres
from infra.components.secrets import PlatformSecrets

__all__ = [
    "Airflow",
    "LambdaApi",
    "LocalStack",
    "Mlflow",
    "MlopsPlatform",
    "ObjectStore",
    "PlatformSecrets",
    "Postgres",
    "PredictionApi",
    "StackConfig",
]
