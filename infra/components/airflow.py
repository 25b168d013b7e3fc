"""Airflow 3: a one-shot ``db migrate`` job, then the API server, scheduler, DAG processor and triggerer.

All containers run the image built from ``infra/docker/airflow.Dockerfile`` (the project installed with
the ``airflow`` extra from uv.lock, the ``ml`` package and ``dags/`` baked in). The SimpleAuthManager
passwords file is written at start by the image's entrypoint from ``MLOPS_AIRFLOW_PASSWORDS_JSON``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components import health
from infra.components.common import (
    TYPE_PREFIX,
    StackContext,
    catalog_dependencies,
    job_container,
    local_image,
    secret_env,
    service_container,
)
from ml.settings import MLSettings

AIRFLOW_UID = "50000"
PATHS = catalog.AirflowPaths(
    home="/opt/airflow",
    dags="/opt/airflow/dags",
    passwords_file="/opt/airflow/simple_auth_manager_passwords.json",
)
LOGS_DIR = f"{PATHS.home}/logs"
PASSWORDS_ENV = "MLOPS_AIRFLOW_PASSWORDS_JSON"  # read (and unset) by infra/docker/airflow-entrypoint.sh
TRIGGER_SCRIPT = "/opt/mlops/bin/trigger_training.py"  # infra/docker/trigger_training.py in the image
COMPONENTS = (
    catalog.AIRFLOW_API,
    catalog.AIRFLOW_SCHEDULER,
    catalog.AIRFLOW_DAG_PROCESSOR,
    catalog.AIRFLOW_TRIGGERER,
)


def component_env(
    service: str, topo: catalog.Topology, creds: catalog.Credentials, settings: MLSettings
) -> dict[str, str]:
    """Environment of one Airflow container: the catalog's, plus the passwords file content for the API server."""
    env = catalog.airflow_env(topo, creds, PATHS, settings)
    if service == catalog.AIRFLOW_API:
        env[PASSWORDS_ENV] = catalog.airflow_passwords_json(creds)
    return env


def trigger_env(topo: catalog.Topology, creds: catalog.Credentials) -> dict[str, str]:
    """Environment of the training trigger job (``trigger_training.py`` reads these names)."""
    return {
        "MLOPS_AIRFLOW_URL": topo.url(catalog.AIRFLOW_API),
        "MLOPS_AIRFLOW_USERNAME": catalog.AIRFLOW_ADMIN_USER,
        "MLOPS_AIRFLOW_PASSWORD": creds.airflow_admin_password,
    }


def trigger_command(dag: str, follow: Sequence[str]) -> list[str]:
    """Arguments of ``trigger_training.py``: trigger ``dag``, then wait for the runs of ``follow``."""
    return [dag, "--then", *follow] if follow else [dag]


class Airflow(pulumi.ComponentResource):
    """Airflow with LocalExecutor on the shared Postgres; task logs on a named volume."""

    image: docker.Image
    logs_volume: docker.Volume
    migrate_job: docker.Container
    containers: dict[str, docker.Container]
    trigger_job: docker.Container | None

    def __init__(
        self,
        name: str,
        ctx: StackContext,
        upstream: Mapping[str, pulumi.Resource],
        extra_dependencies: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:Airflow", name, None, opts)
        settings = ctx.config.ml_settings()
        self.image = local_image(
            "airflow",
            ctx,
            "airflow.Dockerfile",
            parent=self,
            build_args={"AIRFLOW_HOME": PATHS.home, "AIRFLOW_UID": AIRFLOW_UID},
        )
        self.logs_volume = docker.Volume(
            f"{name}-logs", name=ctx.name("airflow-logs"), opts=pulumi.ResourceOptions(parent=self)
        )
        extra = list(extra_dependencies)

        self.migrate_job = job_container(
            f"{name}-migrate",
            ctx,
            "airflow-migrate",
            image=self.image.repo_digest,
            parent=self,
            depends_on=[upstream[catalog.POSTGRES], *extra],
            command=catalog.AIRFLOW_MIGRATE_COMMAND,
            envs=secret_env(ctx.creds, lambda c: catalog.airflow_env(ctx.topo, c, PATHS, settings)),
            check=health.for_job(["CMD", "airflow", "db", "check"], catalog.SERVICES[catalog.POSTGRES].health),
        )

        commands = catalog.commands(ctx.topo)
        available = dict(upstream)
        self.containers = {}
        for service in COMPONENTS:
            deps = [*catalog_dependencies(service, available), *extra]
            if service == catalog.AIRFLOW_API:
                deps.append(self.migrate_job)
            container = service_container(
                f"{name}-{service.removeprefix('airflow-')}",
                ctx,
                service,
                image=self.image.repo_digest,
                parent=self,
                depends_on=deps,
                envs=secret_env(ctx.creds, functools.partial(component_env, service, ctx.topo, settings=settings)),
                command=commands[service],
                volumes=[docker.ContainerVolumeArgs(volume_name=self.logs_volume.name, container_path=LOGS_DIR)],
                wait=service == catalog.AIRFLOW_API,  # the other components wait for it
            )
            self.containers[service] = container
            available[service] = container

        self.trigger_job = None
        if ctx.config.trigger_training:
            api_health = catalog.SERVICES[catalog.AIRFLOW_API].health
            self.trigger_job = job_container(
                f"{name}-trigger-training",
                ctx,
                "trigger-training",
                image=self.image.repo_digest,
                parent=self,
                depends_on=list(self.containers.values()),
                entrypoints=["python", TRIGGER_SCRIPT],
                command=trigger_command(ctx.config.training_dag, ctx.config.follow_dags),
                envs=secret_env(ctx.creds, lambda c: trigger_env(ctx.topo, c)),
                check=health.for_job(
                    health.http_probe(ctx.topo.url(catalog.AIRFLOW_API, api_health.path), api_health.timeout_s),
                    api_health,
                ),
                attach=False,  # fire and forget: follow it with `docker logs -f <prefix>-trigger-training`
            )
        self.register_outputs({"image": self.image.repo_digest, "logs_volume": self.logs_volume.name})

    @property
    def api_server(self) -> docker.Container:
        """The API server container (UI and REST API)."""
        return self.containers[catalog.AIRFLOW_API]
