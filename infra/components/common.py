"""What every component shares: the stack context, environments as secrets, published ports, built images.

Containers themselves are created in one place only, :mod:`infra.components.service`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components.config import REPO_ROOT, StackConfig

DOCKER_DIR = REPO_ROOT / "infra" / "docker"
TYPE_PREFIX = "mlops:infra"  # type token prefix of the component resources


@dataclass(frozen=True)
class StackValues:
    """The stack's values that are only known at deployment time, resolved together.

    ``network`` is the Docker network's name; ``localstack_token`` the optional LocalStack auth token.
    """

    creds: catalog.Credentials
    network: str
    localstack_token: str | None = None


#: Builds a container's environment from the resolved stack values.
EnvBuilder = Callable[[StackValues], Mapping[str, str]]


@dataclass(frozen=True)
class StackContext:
    """What every component needs: the config, the network, the topology, credentials and the stack volumes."""

    config: StackConfig
    network: docker.Network
    topo: catalog.Topology
    creds: pulumi.Output[catalog.Credentials]
    volumes: Mapping[str, docker.Volume]

    def name(self, service: str) -> str:
        """Docker object name (container, volume) of a service in this stack."""
        return self.config.resource_name(service)

    def host_port(self, service: str) -> int:
        """Host port on which a catalog service is published."""
        return self.config.ports.for_service(service)

    def values(self) -> pulumi.Output[StackValues]:
        """Credentials, network name and LocalStack token as one (secret) output."""
        token = self.config.localstack_auth_token
        return pulumi.Output.secret(
            pulumi.Output.all(self.creds, self.network.name, token).apply(
                lambda v: StackValues(creds=v[0], network=v[1], localstack_token=v[2])
            )
        )


def env_list(env: Mapping[str, str]) -> list[str]:
    """``KEY=value`` strings in a stable order (Docker's environment format)."""
    return [f"{key}={value}" for key, value in sorted(env.items())]


def secret_env(ctx: StackContext, build: EnvBuilder) -> pulumi.Output[list[str]]:
    """A container environment built from the stack values; the whole list is a Pulumi secret."""
    return pulumi.Output.secret(ctx.values().apply(lambda v: env_list(build(v))))


def published_port(config: StackConfig, container_port: int, host_port: int) -> docker.ContainerPortArgs:
    """Publish a container port on the configured bind address (127.0.0.1 by default)."""
    return docker.ContainerPortArgs(internal=container_port, external=host_port, ip=config.bind_address)


def local_image(
    resource_name: str,
    config: StackConfig,
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
        image_name=f"{config.name_prefix}/{resource_name}:{config.image_tag}",
        build=docker.DockerBuildArgs(
            context=str(REPO_ROOT),
            dockerfile=str(path),
            args=dict(build_args or {}),
            builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
        ),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
