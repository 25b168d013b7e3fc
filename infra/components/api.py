"""The prediction API (FastAPI under uvicorn) serving the champion model, as a container."""

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


class PredictionApi(pulumi.ComponentResource):
    """The API, built from ``infra/docker/api.Dockerfile`` (only the ``api`` extra: no Airflow, no MLflow)."""

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
        super().__init__(f"{TYPE_PREFIX}:PredictionApi", name, None, opts)
        settings = ctx.config.ml_settings()
        self.image = local_image("api", ctx, "api.Dockerfile", parent=self)
        self.container = service_container(
            name,
            ctx,
            catalog.API,
            image=self.image.repo_digest,
            parent=self,
            depends_on=[*catalog_dependencies(catalog.API, upstream), *extra_dependencies],
            envs=secret_env(ctx.creds, lambda c: catalog.api_env(ctx.topo, c, settings)),
            command=catalog.commands(ctx.topo)[catalog.API],
        )
        self.register_outputs({"container": self.container.name, "image": self.image.repo_digest})
