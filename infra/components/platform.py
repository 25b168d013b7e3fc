"""The whole platform: one :class:`~infra.components.service.ServiceDeployment` per catalog service.

Order comes from the catalog (``depends_on``, :func:`infra.catalog.start_order`): Postgres (+ its roles)
and MinIO (+ buckets and users) -> MLflow (+ its users) -> Airflow (+ migration) and the API; MinIO ->
LocalStack -> the API as a Lambda.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.aws_lambda.pulumi_component import LambdaApi
from infra.components.common import TYPE_PREFIX, StackContext, local_image
from infra.components.config import StackConfig
from infra.components.secrets import PlatformSecrets
from infra.components.service import ServiceDeployment, job_container
from infra.components.services import AIRFLOW_COMPONENTS, BUILT_IMAGES, VOLUMES, stack_services, training_trigger_job


def _secret_field(creds: pulumi.Output[catalog.Credentials], name: str) -> pulumi.Output[str]:
    """One credential as a secret output."""
    return pulumi.Output.secret(creds.apply(lambda c: str(getattr(c, name))))


class MlopsPlatform(pulumi.ComponentResource):
    """Postgres, MinIO, MLflow, Airflow, the API and LocalStack (with the API as a Lambda) on one Docker network.

    ``stack_outputs`` holds what ``__main__`` exports (credentials as secrets).
    """

    stack_outputs: dict[str, pulumi.Input[object]]
    services: dict[str, ServiceDeployment]
    images: dict[str, docker.Image]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secrets = PlatformSecrets("secrets", config.secrets, opts=child)
        self.network = docker.Network("network", name=config.resource_name("net"), opts=child)
        volumes = {key: docker.Volume(key, name=config.resource_name(key), opts=child) for key in VOLUMES}
        ctx = StackContext(
            config=config,
            network=self.network,
            topo=catalog.Topology.docker(),
            creds=self.secrets.credentials,
            volumes=volumes,
        )
        self.images = {
            key: local_image(key, config, built.dockerfile, parent=self, build_args=built.build_args)
            for key, built in BUILT_IMAGES.items()
        }
        plan = stack_services(config, ctx.topo)
        self.services = {}
        for service in catalog.start_order():
            spec = plan.specs[service]
            waits_for = [*catalog.SERVICES[service].depends_on, *spec.after]
            image = plan.images[service]
            self.services[service] = ServiceDeployment(
                spec,
                ctx,
                image=self.images[image].repo_digest if plan.built(service) else image,
                depends_on=[r for dep in waits_for for r in self.services[dep].ready],
                opts=child,
            )

        self.training_trigger: docker.Container | None = None
        if config.trigger_training:
            self.training_trigger = job_container(
                ctx,
                training_trigger_job(config, ctx.topo),
                self.images["airflow"].repo_digest,
                parent=self,
                depends_on=[r for s in AIRFLOW_COMPONENTS for r in self.services[s].ready],
            )

        self.lambda_api: LambdaApi | None = None
        if config.localstack.deploy_lambda:
            # The function loads the champion from MLflow at its first invocation.
            self.lambda_api = LambdaApi(
                "lambda",
                ctx,
                localstack=self.services[catalog.LOCALSTACK].container,
                endpoint=config.host_url(config.ports.localstack),
                extra_dependencies=[self.services[catalog.MLFLOW].container],
                opts=child,
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
            "mlflowAdminUser": catalog.MLFLOW_ADMIN_USER,
            "mlflowAdminPassword": _secret_field(creds, "mlflow_admin_password"),
            "postgresPassword": _secret_field(creds, "postgres_password"),
            "s3AccessKey": _secret_field(creds, "s3_access_key"),
            "s3SecretKey": _secret_field(creds, "s3_secret_key"),
            "apiAdminKey": _secret_field(creds, "api_admin_key"),
            "images": {key: image.repo_digest for key, image in self.images.items()},
        }
        if self.lambda_api is not None:
            outputs["lambdaFunctionName"] = self.lambda_api.function.name
            outputs["lambdaFunctionUrl"] = self.lambda_api.public_function_url
            outputs["lambdaRestApiId"] = self.lambda_api.rest_api.id
            outputs["lambdaRestUrl"] = self.lambda_api.rest_url
            if self.lambda_api.http_api is not None:
                outputs["lambdaHttpApiUrl"] = self.lambda_api.http_api.api_endpoint
        return outputs
