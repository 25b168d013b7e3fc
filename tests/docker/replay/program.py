"""Run the unmodified Pulumi program under a monitor that carries out every resource on a real engine.

Pulumi's mock framework hands each resource registration, with its resolved inputs, to a monitor; no CLI
and no provider plugin is needed. :class:`ReplayMonitor` answers each registration by creating the real
thing (Docker objects through the Docker SDK, AWS resources in LocalStack through boto3, random
passwords) and returns the outputs the provider would. A resource registers only once the outputs it
consumes and the resources it ``depends_on`` are done, so the engine's ordering is kept. Every created
resource is recorded with its dependencies; :meth:`Deployment.destroy` deletes them in reverse
dependency order, as ``pulumi destroy`` does.

What is not carried out is an error: an unknown resource type, an input the executors do not implement,
or a resource option that would change create/delete (``protect``, ``import``, custom timeouts...).
"""

from __future__ import annotations

import json
import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pulumi
import pulumi.runtime.settings as pulumi_settings
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from tests.docker.replay import aws_resources, docker_resources, random_resources
from tests.docker.replay.errors import ReplayError

REPO = Path(__file__).resolve().parents[3]
MAIN = REPO / "infra" / "__main__.py"
PROJECT = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["name"]


@dataclass
class Created:
    """One resource the replay created (``tainted`` when its create failed half-way, as Terraform's are)."""

    urn: str
    type: str
    name: str
    id: str
    outputs: dict[str, Any]
    depends_on: set[str]
    provider_ref: str
    custom: bool
    tainted: bool = False


def unwrap_secrets(value: Any) -> Any:
    """Inputs as the provider sees them: secret markers removed."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


class _NoMocks(pulumi_mocks.Mocks):
    """The mock hooks are unused: :class:`ReplayMonitor` answers every request itself."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        raise ReplayError(f"unexpected read of {args.typ} {args.name}")

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise ReplayError(f"provider function {args.token} is not carried out by the replay")


class ReplayMonitor(pulumi_mocks.MockMonitor):
    """A resource monitor whose every registration creates the real resource."""

    def __init__(self, client: docker.DockerClient, docker_cli: str, log: Callable[[str], None]) -> None:
        super().__init__(_NoMocks())
        self.docker = docker_resources.DockerResources(client, docker_cli, log)
        self.aws = aws_resources.AwsResources()
        self.created: list[Created] = []
        self.log = log
        self._lock = threading.Lock()

    @staticmethod
    def _check_options(request: Any) -> None:
        """Options that would change how a resource is created or deleted are not carried out."""
        unsupported = {
            "protect": request.protect,
            "importId": request.importId,
            "retainOnDelete": request.retainOnDelete,
            "deletedWith": request.deletedWith,
            "customTimeouts": request.customTimeouts.create or request.customTimeouts.delete
            if request.HasField("customTimeouts")
            else "",
            "remote": request.remote,
        }
        set_options = sorted(k for k, v in unsupported.items() if v)
        if set_options:
            raise ReplayError(f"{request.type} {request.name}: option(s) {set_options} are not carried out")

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        """Create the resource for real, record it, and answer with its id and outputs."""
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()
        self._check_options(request)
        inputs = unwrap_secrets(rpc.deserialize_properties(request.object))
        depends_on = set(request.dependencies)
        for deps in request.propertyDependencies.values():
            depends_on |= set(deps.urns)
        if request.parent:
            depends_on.add(request.parent)
        if request.provider:
            depends_on.add(request.provider.split("::id", 1)[0].rsplit("::", 1)[0])
        record = Created(urn, request.type, request.name, "", {}, depends_on, request.provider, bool(request.custom))
        try:
            rid, state = self._create(request, inputs)
        except docker_resources.PartialCreateError as partial:
            record.id, record.tainted = partial.resource_id, True
            with self._lock:
                self.created.append(record)
            raise ReplayError(str(partial)) from None
        record.id, record.outputs = rid, state
        with self._lock:
            self.created.append(record)
            self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, rid, state)
        if request.type == aws_resources.PROVIDER:
            self.aws.register_provider(f"{urn}::{rid}", inputs)
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid, object=obj_proto)

    def _create(self, request: Any, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        typ, name = request.type, request.name
        if not request.custom:
            return "", inputs  # a component: nothing to create
        if typ.startswith("docker:"):
            return self.docker.create(typ, name, inputs)
        if typ.startswith("aws:") or typ == aws_resources.PROVIDER:
            return self.aws.create(typ, name, inputs, request.provider)
        if typ == random_resources.RANDOM_PASSWORD:
            return random_resources.password(name, inputs)
        raise ReplayError(f"resource type {typ} ({name}) is not carried out by the replay")


@dataclass
class Deployment:
    """What one replayed ``pulumi up`` created, its stack outputs, and how to destroy it."""

    monitor: ReplayMonitor
    outputs: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def created(self) -> list[Created]:
        """Every resource created (in completion order)."""
        return list(self.monitor.created)

    def of_type(self, typ: str) -> list[Created]:
        """Created resources of one type."""
        return [c for c in self.monitor.created if c.type == typ]

    def containers(self) -> dict[str, Created]:
        """Created containers by their Docker name."""
        return {c.outputs.get("name", c.name): c for c in self.of_type(docker_resources.CONTAINER)}

    def destroy_order(self) -> list[Created]:
        """Resources in reverse dependency order: each one after everything that depends on it."""
        remaining = {c.urn: c for c in self.monitor.created}
        dependants: dict[str, set[str]] = {urn: set() for urn in remaining}
        for c in remaining.values():
            for dep in c.depends_on:
                if dep in dependants:
                    dependants[dep].add(c.urn)
        order: list[Created] = []
        while remaining:
            ready = [urn for urn in remaining if not (dependants[urn] & remaining.keys())]
            if not ready:
                raise ReplayError(f"dependency cycle among {sorted(remaining)}")
            for urn in sorted(ready):
                order.append(remaining.pop(urn))
        return order

    def destroy(self) -> list[str]:
        """``pulumi destroy``: delete every resource in reverse dependency order; returns what was deleted.

        Continues past a failed delete so that the rest is cleaned up, then raises the first failure.
        """
        deleted: list[str] = []
        errors: list[str] = []
        for c in self.destroy_order():
            if not c.custom or not c.id:
                continue
            try:
                if c.type.startswith("docker:"):
                    self.monitor.docker.delete(c.type, c.id, c.outputs)
                elif c.type.startswith("aws:") or c.type == aws_resources.PROVIDER:
                    self.monitor.aws.delete(c.type, c.id, c.outputs, c.provider_ref)
                deleted.append(f"{c.type} {c.name}")
            except Exception as e:  # keep going: leave as little behind as possible
                errors.append(f"{c.type} {c.name}: {e}")
        with self.monitor._lock:
            self.monitor.created.clear()
        if errors:
            raise ReplayError("destroy failed for:\n  " + "\n  ".join(errors))
        return deleted


def config_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the engine hands it to the program (``<project>:<key>``, objects as JSON)."""
    return {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def stack_config(stack: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``Pulumi.<stack>.yaml`` (project namespace stripped) with ``overrides`` applied on top."""
    raw = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    base = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    return {**base, **overrides}


def up(
    client: docker.DockerClient,
    docker_cli: str,
    config: Mapping[str, Any],
    stack: str = "dev",
    log: Callable[[str], None] = print,
) -> Deployment:
    """Replay ``pulumi up`` of ``infra/__main__.py`` with ``config``; a failure is in ``Deployment.error``.

    On failure the resources created so far stay recorded, so that :meth:`Deployment.destroy` removes them.
    """
    pulumi.runtime.set_all_config(config_values(config), [])
    monitor = ReplayMonitor(client, docker_cli, log)
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    deployment = Deployment(monitor)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(MAIN), run_name="__main__")
        root = pulumi_settings.get_root_resource()
        exported: dict[str, Any] = dict(root.outputs)  # type: ignore[union-attr]

        async def collect() -> None:
            for key, value in exported.items():
                deployment.outputs[key] = await pulumi.Output.from_input(value).future()

        return pulumi.Output.from_input(collect())

    try:
        program()
    except BaseException as e:  # handed to the caller with the partial deployment
        deployment.error = e
    return deployment
