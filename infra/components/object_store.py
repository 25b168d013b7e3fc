"""MinIO: the S3 data lake and MLflow's artifact store, with the catalog's buckets."""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components import health
from infra.components.common import TYPE_PREFIX, StackContext, job_container, secret_env, service_container

DATA_DIR = "/data"
CONSOLE_PORT = 9001
MC_ALIAS = "stack"


def server_env(creds: catalog.Credentials) -> dict[str, str]:
    """Environment of the MinIO server: the stack's S3 keys are its root credentials."""
    return {"MINIO_ROOT_USER": creds.s3_access_key, "MINIO_ROOT_PASSWORD": creds.s3_secret_key}


def mc_env(topo: catalog.Topology, creds: catalog.Credentials) -> dict[str, str]:
    """``mc`` alias from the environment (``MC_HOST_<alias>``), so no key appears on a command line."""
    endpoint = catalog.s3_endpoint(topo).removeprefix("http://")
    user, password = quote(creds.s3_access_key, safe=""), quote(creds.s3_secret_key, safe="")
    return {f"MC_HOST_{MC_ALIAS}": f"http://{user}:{password}@{endpoint}"}


def bucket_command() -> list[str]:
    """``mc`` arguments creating every catalog bucket (idempotent)."""
    return ["mb", "--ignore-existing", *(f"{MC_ALIAS}/{bucket}" for bucket in catalog.BUCKETS)]


class ObjectStore(pulumi.ComponentResource):
    """MinIO on a named volume, plus a one-shot ``mc`` job that creates the buckets."""

    container: docker.Container
    buckets_job: docker.Container
    volume: docker.Volume

    def __init__(self, name: str, ctx: StackContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:ObjectStore", name, None, opts)
        self.volume = docker.Volume(f"{name}-data", name=ctx.name("s3data"), opts=pulumi.ResourceOptions(parent=self))
        self.container = service_container(
            name,
            ctx,
            catalog.S3,
            image=ctx.config.images.minio,
            parent=self,
            depends_on=[self.volume],
            envs=secret_env(ctx.creds, server_env),
            command=["server", DATA_DIR, "--console-address", f":{CONSOLE_PORT}"],
            extra_ports=[(CONSOLE_PORT, ctx.config.ports.s3_console)],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_DIR)],
            wait=True,
        )
        self.buckets_job = job_container(
            f"{name}-buckets",
            ctx,
            "s3-buckets",
            image=ctx.config.images.minio,
            parent=self,
            depends_on=[self.container],
            entrypoints=["mc"],
            command=bucket_command(),
            envs=secret_env(ctx.creds, lambda c: mc_env(ctx.topo, c)),
            check=health.for_job(["CMD", "mc", "ready", MC_ALIAS], catalog.SERVICES[catalog.S3].health),
        )
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})
