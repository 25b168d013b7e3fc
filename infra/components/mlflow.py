"""MLflow: tracking server and model registry (Postgres backend, artifacts proxied to S3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components.common import (
    TYPE_PREFIX,
    StackContext,
    catalog_dependencies,
    local_image,
    secret_env,
    service_container,
)


def allowed_hosts(ctx: StackContext) -> tuple[str, ...]:
    """Extra Host headers MLflow must accept besides the catalog's (service name, localhost).

    The container name, and the published host port when it differs from the container port.
    """
    hosts = [ctx.name(catalog.MLFLOW)]
    host_port = ctx.host_port(catalog.MLFLOW)
    if host_port != ctx.topo.port(catalog.MLFLOW):
        hosts += [f"localhost:{host_port}", f"127.0.0.1:{host_port}"]
    return tuple(hosts)


class Mlflow(pulumi.ComponentResource):
    """The MLflow server, built from ``infra/docker/mlflow.Dockerfile``."""

    image: docker.Image
    container: docker.Container

    def __init__(
        self,
        name: str,
        ctx: StackContext,
        upstream: Mapping[str, pulumi.Resource],
        extra_dependencies: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:Mlflow", name, None, opts)
        self.image = local_image("mlflow", ctx, "mlflow.Dockerfile", parent=self)
        hosts = allowed_hosts(ctx)
        self.container = service_container(
            name,
            ctx,
            catalog.MLFLOW,
            image=self.image.repo_digest,
            parent=self,
            depends_on=[*catalog_dependencies(catalog.MLFLOW, upstream), *extra_dependencies],
            envs=secret_env(ctx.creds, lambda c: catalog.mlflow_server_env(ctx.topo, c, allowed_hosts=hosts)),
            command=catalog.commands(ctx.topo)[catalog.MLFLOW],
            wait=True,
        )
        self.register_outputs({"container": self.container.name, "image": self.image.repo_digest})
