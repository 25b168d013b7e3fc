"""LocalStack: emulated AWS in which the prediction API runs as a Lambda.

LocalStack runs Lambda functions in sibling containers: it gets the Docker socket and starts them on the
stack network (``LAMBDA_DOCKER_NETWORK``), where they reach MLflow and MinIO by service name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components.common import TYPE_PREFIX, StackContext, catalog_dependencies, env_list, service_container

DOCKER_SOCKET = "/var/run/docker.sock"
AWS_SERVICES = ("s3", "iam", "sts", "lambda", "logs", "apigateway")


def server_env(network_name: str, host_port: int, http_api: bool, auth_token: str | None = None) -> dict[str, str]:
    """Environment of the LocalStack container."""
    env = {
        "SERVICES": ",".join((*AWS_SERVICES, "apigatewayv2") if http_api else AWS_SERVICES),
        "LAMBDA_DOCKER_NETWORK": network_name,
        # Function URLs and API endpoints LocalStack reports use the published port.
        "LOCALSTACK_HOST": f"localhost.localstack.cloud:{host_port}",
        # A cold start of the API package takes ~8 s; LocalStack's default budget is 20 s.
        "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": "60",
        "DOCKER_HOST": f"unix://{DOCKER_SOCKET}",
    }
    if auth_token:
        env["LOCALSTACK_AUTH_TOKEN"] = auth_token
    return env


class LocalStack(pulumi.ComponentResource):
    """The LocalStack container (pinned tag; an auth token only if configured)."""

    container: docker.Container
    endpoint: str

    def __init__(
        self,
        name: str,
        ctx: StackContext,
        upstream: Mapping[str, pulumi.Resource],
        extra_dependencies: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:LocalStack", name, None, opts)
        host_port = ctx.host_port(catalog.LOCALSTACK)
        http_api = ctx.config.localstack.http_api
        token = ctx.config.localstack_auth_token
        envs: pulumi.Output[list[str]]
        if token is None:
            envs = ctx.network.name.apply(lambda net: env_list(server_env(net, host_port, http_api)))
        else:
            envs = pulumi.Output.secret(
                pulumi.Output.all(ctx.network.name, token).apply(
                    lambda args: env_list(server_env(args[0], host_port, http_api, args[1]))
                )
            )
        self.container = service_container(
            name,
            ctx,
            catalog.LOCALSTACK,
            image=ctx.config.images.localstack,
            parent=self,
            depends_on=[*catalog_dependencies(catalog.LOCALSTACK, upstream), *extra_dependencies],
            envs=envs,
            probe="curl",
            volumes=[
                docker.ContainerVolumeArgs(host_path=ctx.config.localstack.docker_socket, container_path=DOCKER_SOCKET)
            ],
            wait=True,
            init=False,  # LocalStack's entrypoint manages its processes and Lambda containers
        )
        # Pulumi (on the host) talks to LocalStack through the published port.
        self.endpoint = ctx.config.host_url(host_port)
        self.register_outputs({"container": self.container.name, "endpoint": self.endpoint})
