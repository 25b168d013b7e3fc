"""PostgreSQL: the metadata database of Airflow, MLflow and the Optuna studies."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components.common import TYPE_PREFIX, StackContext, secret_env, service_container

DATA_DIR = "/var/lib/postgresql/data"  # PGDATA of the postgres 17 image (18 moved it: adjust when upgrading)
INIT_SCRIPT = "/docker-entrypoint-initdb.d/10-create-databases.sql"


def init_sql() -> str:
    """SQL run once, on an empty volume: one database per catalog database (no secret in it)."""
    return "".join(f"CREATE DATABASE {db} OWNER {catalog.POSTGRES_USER};\n" for db in catalog.DATABASES)


def server_env(creds: catalog.Credentials) -> dict[str, str]:
    """Environment of the official postgres image (password applied at first initialisation only)."""
    return {
        "POSTGRES_USER": catalog.POSTGRES_USER,
        "POSTGRES_PASSWORD": creds.postgres_password,
    }


class Postgres(pulumi.ComponentResource):
    """The official postgres image on a named volume, databases created by an init script."""

    container: docker.Container
    volume: docker.Volume

    def __init__(self, name: str, ctx: StackContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Postgres", name, None, opts)
        # Pulumi-managed: `pulumi destroy` deletes it, together with the generated password it was created with.
        self.volume = docker.Volume(f"{name}-data", name=ctx.name("pgdata"), opts=pulumi.ResourceOptions(parent=self))
        self.container = service_container(
            name,
            ctx,
            catalog.POSTGRES,
            image=ctx.config.images.postgres,
            parent=self,
            depends_on=[self.volume],
            envs=secret_env(ctx.creds, server_env),
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_DIR)],
            uploads=[docker.ContainerUploadArgs(file=INIT_SCRIPT, content=init_sql())],
            wait=True,
            init=False,  # the image's entrypoint handles signals itself
        )
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})
