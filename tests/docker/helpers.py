"""Helpers of the Docker-tier tests: tracked Docker objects, waits, healthchecks."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

NAME_PREFIX = "mlops-standin-test-"


class DockerResources:
    """Names and tracks the containers, networks, volumes and images of one test; removes them at the end."""

    def __init__(self, client: docker.DockerClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.containers: list[Container] = []
        self.networks: list[Any] = []
        self.volumes: list[Any] = []
        self.images: list[str] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}"

    def network(self, what: str = "net") -> Any:
        network = self.client.networks.create(self.name(what), driver="bridge")
        self.networks.append(network)
        return network

    def volume(self, what: str = "data") -> Any:
        volume = self.client.volumes.create(self.name(what))
        self.volumes.append(volume)
        return volume

    def create(self, image: str, what: str, **kwargs: Any) -> Container:
        """``containers.create`` with a tracked, prefixed name (not started)."""
        container = self.client.containers.create(image, name=self.name(what), **kwargs)
        self.containers.append(container)
        return container

    def track_image(self, tag: str) -> None:
        self.images.append(tag)

    def cleanup(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        for network in self.networks:
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
        for volume in self.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
        for tag in self.images:
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.images.remove(tag, force=True)


# ---------------------------------------------------------------------------------------------------------


def wait_healthy(container: Container, timeout_s: float = 60.0) -> None:
    """Wait until Docker reports the container healthy; fail with its logs if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if state["Status"] in ("exited", "dead"):
            pytest.fail(f"{container.name} exited ({state['ExitCode']}):\n{logs(container)[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"{container.name} not healthy after {timeout_s:.0f} s:\n{logs(container)[-3000:]}")


def wait_exit(container: Container, timeout_s: float = 60.0) -> int:
    """Wait for the container to exit; its exit code."""
    result = container.wait(timeout=timeout_s)
    return int(result["StatusCode"])


def logs(container: Container) -> str:
    return container.logs(stdout=True, stderr=True).decode(errors="replace")


def host_port(container: Container, port: int) -> int:
    """The 127.0.0.1 host port Docker published ``port/tcp`` on."""
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
    return int(bindings[0]["HostPort"])


def healthcheck(
    tests: list[str], interval_s: float = 1.0, timeout_s: float = 10.0, retries: int = 60
) -> dict[str, Any]:
    """A docker SDK healthcheck running ``tests`` (a ``["CMD", ...]`` list) at test-friendly timings."""
    ns = 1_000_000_000
    return {"test": tests, "interval": int(interval_s * ns), "timeout": int(timeout_s * ns), "retries": retries}
