"""Building blocks shared by the service components: the stack context, images, containers, environments.

Every container of the stack is created by :func:`service_container` or :func:`job_container`, so each
one joins the stack network under its catalog service name, carries a healthcheck rendered from the
catalog, publishes ports on the configured bind address only, and names its dependencies explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components import health
from infra.components.config import REPO_ROOT, StackConfig

DOCKER_DIR = REPO_ROOT / "infra" / "docker"
TYPE_PREFIX = "mlops:infra"  # type token prefix of the component resources


@dataclass(frozen=True)
class StackContext:
    """What every service component needs: the config, the network, the topology and the credentials."""

    config: StackConfig
    network: docker.Network
    topo: catalog.Topology
    creds: pulumi.Output[catalog.Credentials]

    def name(self, service: str) -> str:
        """Docker object name (container, volume) of a service in this stack."""
        return self.config.resource_name(service)

    def host_port(self, service: str) -> int:
        """Host port on which a catalog service is published."""
        return self.config.ports.for_service(service)


def env_list(env: Mapping[str, str]) -> list[str]:
    """``KEY=value`` strings in a stable order (Docker's environment format)."""
    return [f"{key}={value}" for key, value in sorted(env.items())]


def secret_env(
    creds: pulumi.Output[catalog.Credentials], build: Callable[[catalog.Credentials], Mapping[str, str]]
) -> pulumi.Output[list[str]]:
    """A container environment built from the credentials; the whole list is a Pulumi secret."""
    return pulumi.Output.secret(creds.apply(lambda c: env_list(build(c))))


def published_port(config: StackConfig, container_port: int, host_port: int) -> docker.ContainerPortArgs:
    """Publish a container port on the configured bind address (127.0.0.1 by default)."""
    return docker.ContainerPortArgs(internal=container_port, external=host_port, ip=config.bind_address)


def local_image(
    resource_name: str,
    ctx: StackContext,
    dockerfile: str,
    parent: pulumi.Resource,
    build_args: Mapping[str, str] | None = None,
) -> docker.Image:
    """Build one of the repository's images (context: the repository root) without pushing it.

    Containers must reference ``image.repo_digest`` (the local image ID), so a rebuild replaces them.
    """
    path: Path = DOCKER_DIR / dockerfile
    return docker.Image(
        resource_name,
        image_name=f"{ctx.config.name_prefix}/{resource_name}:{ctx.config.image_tag}",
        build=docker.DockerBuildArgs(
            context=str(REPO_ROOT),
            dockerfile=str(path),
            args=dict(build_args or {}),
            builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
        ),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _labels(ctx: StackContext, service: str, role: str) -> list[docker.ContainerLabelArgs]:
    values = {"mlops.stack": ctx.config.stack, "mlops.service": service, "mlops.role": role}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in values.items()]


def service_container(
    resource_name: str,
    ctx: StackContext,
    service: str,
    image: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    envs: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
    command: Sequence[str] | None = None,
    probe: health.HttpProbe = "python",
    wait: bool = False,
    extra_ports: Sequence[tuple[int, int]] = (),
    volumes: Sequence[docker.ContainerVolumeArgs] = (),
    uploads: Sequence[docker.ContainerUploadArgs] = (),
    entrypoints: Sequence[str] | None = None,
    init: bool = True,
) -> docker.Container:
    """A long-running container of a catalog service.

    Ports, healthcheck and network alias come from the catalog; ``wait`` makes ``pulumi up`` block until
    the container is healthy (set it on the services that others depend on).
    """
    svc = catalog.SERVICES[service]
    ports = [published_port(ctx.config, ctx.topo.port(service), ctx.host_port(service))] if svc.port else []
    ports += [published_port(ctx.config, inner, outer) for inner, outer in extra_ports]
    check = health.for_service(service, ctx.topo, probe)
    return docker.Container(
        resource_name,
        name=ctx.name(service),
        hostname=service,
        image=image,
        envs=envs,
        command=list(command) if command is not None else None,
        entrypoints=list(entrypoints) if entrypoints is not None else None,
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=ctx.network.name, aliases=[service])],
        ports=ports,
        healthcheck=check.args(),
        wait=wait,
        wait_timeout=health.wait_timeout_s(svc.health) if wait else None,
        restart="unless-stopped",
        init=init,
        volumes=list(volumes),
        uploads=list(uploads),
        labels=_labels(ctx, service, "service"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def job_container(
    resource_name: str,
    ctx: StackContext,
    job: str,
    image: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    command: Sequence[str],
    check: health.RenderedHealthcheck,
    envs: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
    entrypoints: Sequence[str] | None = None,
    attach: bool = True,
) -> docker.Container:
    """A one-shot container on the stack network (bucket creation, DB migration, training trigger).

    With ``attach`` Pulumi waits until the job has exited; the exited container is kept (``docker logs``)
    and is not restarted. Its image digest and environment are inputs, so a change re-runs the job.
    """
    return docker.Container(
        resource_name,
        name=ctx.name(job),
        image=image,
        envs=envs,
        command=list(command),
        entrypoints=list(entrypoints) if entrypoints is not None else None,
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=ctx.network.name)],
        healthcheck=check.args(),
        attach=attach,
        logs=attach,
        must_run=False,
        restart="no",
        rm=False,
        labels=_labels(ctx, job, "job"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def catalog_dependencies(service: str, available: Mapping[str, pulumi.Resource]) -> list[pulumi.Resource]:
    """The containers a service depends on according to the catalog (fails if one is missing)."""
    missing = [dep for dep in catalog.SERVICES[service].depends_on if dep not in available]
    if missing:
        raise ValueError(f"{service} depends on {missing} (catalog) but they were not created before it")
    return [available[dep] for dep in catalog.SERVICES[service].depends_on]
