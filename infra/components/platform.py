"""The whole platform: network, credentials and one component per service, wired in dependency order."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components.airflow import Airflow
from infra.components.api import PredictionApi
from infra.components.common import TYPE_PREFIX, StackContext
from infra.components.config import StackConfig
from infra.components.lambda_api import LambdaApi
from infra.components.localstack import LocalStack
from infra.components.mlflow import Mlflow
from infra.components.object_store import ObjectStore
from infra.components.postgres import Postgres
from infra.components.secrets import PlatformSecrets


def _secret_field(creds: pulumi.Output[catalog.Credentials], name: str) -> pulumi.Output[str]:
    """One credential as a secret output."""
    return pulumi.Output.secret(creds.apply(lambda c: str(getattr(c, name))))


class MlopsPlatform(pulumi.ComponentResource):
    """Postgres, MinIO, MLflow, Airflow, the API and LocalStack (with the API as a Lambda) on one Docker network.

    Order: Postgres and MinIO (+ buckets) -> MLflow -> Airflow and the API; MinIO -> LocalStack -> Lambda.
    ``stack_outputs`` holds what ``__main__`` exports (credentials as secrets).
    """

    stack_outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secrets = PlatformSecrets("secrets", config.secrets, opts=child)
        self.network = docker.Network("network", name=config.resource_name("net"), opts=child)
        ctx = StackContext(
            config=config, network=self.network, topo=catalog.Topology.docker(), creds=self.secrets.credentials
        )

        self.postgres = Postgres("postgres", ctx, opts=child)
        self.object_store = ObjectStore("minio", ctx, opts=child)
        upstream: dict[str, pulumi.Resource] = {
            catalog.POSTGRES: self.postgres.container,
            catalog.S3: self.object_store.container,
        }
        self.mlflow = Mlflow("mlflow", ctx, upstream, extra_dependencies=[self.object_store.buckets_job], opts=child)
        upstream[catalog.MLFLOW] = self.mlflow.container
        # MLflow before Airflow and the API (Airflow's API server alone would not need it, its tasks do).
        self.airflow = Airflow("airflow", ctx, upstream, extra_dependencies=[self.mlflow.container], opts=child)
        self.api = PredictionApi("api", ctx, upstream, opts=child)
        self.localstack = LocalStack("localstack", ctx, upstream, opts=child)

        self.lambda_api: LambdaApi | None = None
        if config.localstack.deploy_lambda:
            # The function loads the champion from MLflow at its first invocation.
            self.lambda_api = LambdaApi(
                "lambda", ctx, self.localstack, extra_dependencies=[self.mlflow.container], opts=child
            )

        self.stack_outputs = self._outputs(config)
        self.register_outputs({})

    def _outputs(self, config: StackConfig) -> dict[str, pulumi.Input[object]]:
        ports = config.ports
        creds = self.secrets.credentials
        outputs: dict[str, pulumi.Input[object]] = {
            "networkName": self.network.name,
            "postgresUrl": f"postgresql://{catalog.POSTGRES_USER}@{config.host}:{ports.postgres}/mlflow",
            "s3Endpoint": config.host_url(ports.s3),
            "s3ConsoleUrl": config.host_url(ports.s3_console),
            "mlflowUrl": config.host_url(ports.mlflow),
            "airflowUrl": config.host_url(ports.airflow),
            "apiUrl": config.host_url(ports.api),
            "apiDocsUrl": config.host_url(ports.api, "/docs"),
            "localstackUrl": config.host_url(ports.localstack),
            "airflowAdminUser": catalog.AIRFLOW_ADMIN_USER,
            "airflowAdminPassword": _secret_field(creds, "airflow_admin_password"),
            "postgresPassword": _secret_field(creds, "postgres_password"),
            "s3AccessKey": _secret_field(creds, "s3_access_key"),
            "s3SecretKey": _secret_field(creds, "s3_secret_key"),
            "apiAdminKey": _secret_field(creds, "api_admin_key"),
            "images": {
                "mlflow": self.mlflow.image.repo_digest,
                "airflow": self.airflow.image.repo_digest,
                "api": self.api.image.repo_digest,
            },
        }
        if self.lambda_api is not None:
            outputs["lambdaFunctionName"] = self.lambda_api.function.name
            outputs["lambdaFunctionUrl"] = self.lambda_api.function_url.function_url
            outputs["lambdaRestApiId"] = self.lambda_api.rest_api.id
            outputs["lambdaRestUrl"] = self.lambda_api.rest_url
            if self.lambda_api.http_api is not None:
                outputs["lambdaHttpApiUrl"] = self.lambda_api.http_api.api_endpoint
        return outputs
