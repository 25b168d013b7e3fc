"""The one generic service component: a catalog service as a container, with its one-shot jobs.

A :class:`ContainerSpec` (plain data, see :mod:`infra.components.services`) says how one catalog service
runs on Docker: its image, environment, command, mounts and jobs. :class:`ServiceDeployment` renders it
the same way for every service (the ``ServiceDeployment`` of pulumi/examples' kubernetes-py-guestbook):

* the container joins the stack network under its service name, publishes the catalog port on the bind
  address only, carries the catalog's healthcheck, restarts unless stopped, and is stopped with the
  catalog's grace period on ``pulumi destroy`` (``destroy_grace_seconds``) and ``docker stop``;
* Pulumi waits for it to be healthy when another service depends on it (catalog ``depends_on``);
* ``jobs_before`` run to completion before the container starts, ``jobs_after`` once it is healthy, one
  after the other; each job's exit code is checked, so a failed migration stops ``pulumi up`` with the
  job's name and logs instead of surfacing minutes later as a health timeout. A job that needs secrets
  gets them in its environment (a Pulumi secret), never in its command or in the files it is given.

:attr:`ServiceDeployment.ready` is what dependants wait on: the container and its checked jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra import catalog
from infra.components import health
from infra.components.common import TYPE_PREFIX, EnvBuilder, StackContext, published_port, secret_env

#: Services some other service waits for (catalog ``depends_on``): Pulumi waits until they are healthy.
WAITED_ON = frozenset(dep for svc in catalog.SERVICES.values() for dep in svc.depends_on)


@dataclass(frozen=True)
class Mount:
    """A stack volume (by its key in ``StackContext.volumes``) or a host path, mounted at ``path``."""

    path: str
    volume: str | None = None
    host_path: str | None = None
    read_only: bool = False

    def args(self, ctx: StackContext) -> docker.ContainerVolumeArgs:
        """The container's volume argument (``read_only`` only when set: other mounts keep their inputs)."""
        read_only = True if self.read_only else None
        if self.volume is not None:
            return docker.ContainerVolumeArgs(
                volume_name=ctx.volumes[self.volume].name, container_path=self.path, read_only=read_only
            )
        return docker.ContainerVolumeArgs(host_path=self.host_path, container_path=self.path, read_only=read_only)


@dataclass(frozen=True)
class Job:
    """A one-shot container (bucket creation, users and roles, database migration, training trigger).

    ``check`` documents (and shows in ``docker ps`` while it runs) what the job needs. With ``attach`` Pulumi
    waits for the exit and the exit code must be 0; without it the job is started and left to run.
    ``uploads`` (path in the container -> content) are copied in before it starts: scripts and policy
    documents, never a secret (those come from ``env``).
    """

    name: str
    command: Sequence[str]
    check: health.RenderedHealthcheck
    env: EnvBuilder | None = None
    entrypoint: Sequence[str] | None = None
    image: str | None = None  # an upstream reference; None: the service's own image
    attach: bool = True
    uploads: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerSpec:
    """How one catalog service runs as a container (everything else comes from the catalog)."""

    service: str
    env: EnvBuilder
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    mounts: Sequence[Mount] = ()
    uploads: Mapping[str, str] = field(default_factory=dict)  # path in the container -> content
    extra_ports: Sequence[tuple[int, int]] = ()  # (container port, host port)
    probe: health.HttpProbe = "python"
    init: bool = True  # tini as PID 1; False where the image's entrypoint handles signals itself
    wait: bool = False  # also wait for health where no catalog service depends on it (e.g. LocalStack)
    after: Sequence[str] = ()  # services to wait for besides the catalog's ``depends_on``
    jobs_before: Sequence[Job] = ()
    jobs_after: Sequence[Job] = ()


def _labels(ctx: StackContext, name: str, role: str) -> list[docker.ContainerLabelArgs]:
    values = {"mlops.stack": ctx.config.stack, "mlops.service": name, "mlops.role": role}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in values.items()]


def _uploads(files: Mapping[str, str]) -> list[docker.ContainerUploadArgs]:
    """Files copied into a container before it starts (path -> content)."""
    return [docker.ContainerUploadArgs(file=path, content=text) for path, text in files.items()]


def checked(job: docker.Container, docker_name: str) -> pulumi.Output[docker.Container]:
    """``job`` once it has exited with code 0; a non-zero exit fails the deployment with what to look at.

    The bridged Docker provider waits for an attached container to exit but never checks its exit code.
    """

    def require_zero(code: int | None) -> docker.Container:
        if code != 0:
            raise pulumi.RunError(
                f"job {docker_name} exited with code {code}: see `docker logs {docker_name}`; "
                "fix the cause, then run `pulumi up` again (the job re-runs when its inputs change, or "
                f"force it with `pulumi up --replace <urn of {docker_name}>`)"
            )
        return job

    return job.exit_code.apply(require_zero)


def job_container(
    ctx: StackContext,
    job: Job,
    image: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Input[pulumi.Resource]],
) -> docker.Container:
    """The container of one job, on the stack network, never restarted, kept after it exits (``docker logs``)."""
    return docker.Container(
        job.name,
        name=ctx.name(job.name),
        image=job.image or image,
        envs=secret_env(ctx, job.env) if job.env else None,
        command=list(job.command),
        entrypoints=list(job.entrypoint) if job.entrypoint is not None else None,
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=ctx.network.name)],
        healthcheck=job.check.args(),
        uploads=_uploads(job.uploads),
        attach=job.attach,
        logs=job.attach,
        must_run=False,
        restart="no",
        rm=False,
        labels=_labels(ctx, job.name, "job"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


class ServiceDeployment(pulumi.ComponentResource):
    """One catalog service on Docker: its jobs before, its container, its jobs after."""

    container: docker.Container
    jobs: dict[str, docker.Container]
    ready: list[pulumi.Input[pulumi.Resource]]

    def __init__(
        self,
        spec: ContainerSpec,
        ctx: StackContext,
        image: pulumi.Input[str],
        depends_on: Sequence[pulumi.Input[pulumi.Resource]] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:Service", spec.service, None, opts)
        svc = catalog.SERVICES[spec.service]
        self.jobs = {}
        before: list[pulumi.Input[pulumi.Resource]] = list(depends_on)
        for job in spec.jobs_before:
            container = job_container(ctx, job, image, self, before)
            self.jobs[job.name] = container
            if job.attach:
                before.append(checked(container, ctx.name(job.name)))

        published = [(ctx.topo.port(spec.service), ctx.host_port(spec.service))] if svc.port else []
        ports = [published_port(ctx.config, inner, outer) for inner, outer in [*published, *spec.extra_ports]]
        wait = spec.wait or spec.service in WAITED_ON
        self.container = docker.Container(
            spec.service,
            name=ctx.name(spec.service),
            hostname=spec.service,
            image=image,
            envs=secret_env(ctx, spec.env),
            command=list(spec.command) if spec.command is not None else None,
            entrypoints=list(spec.entrypoint) if spec.entrypoint is not None else None,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=ctx.network.name, aliases=[spec.service])],
            ports=ports,
            healthcheck=health.for_service(spec.service, ctx.topo, spec.probe).args(),
            wait=wait,
            wait_timeout=health.wait_timeout_s(svc.health) if wait else None,
            restart="unless-stopped",
            init=spec.init,
            stop_timeout=svc.stop_grace_s,
            destroy_grace_seconds=svc.stop_grace_s,
            volumes=[m.args(ctx) for m in spec.mounts],
            uploads=_uploads(spec.uploads),
            labels=_labels(ctx, spec.service, "service"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=before),
        )
        self.ready = [self.container]
        for job in spec.jobs_after:  # in order: each after the container and the jobs before it
            container = job_container(ctx, job, image, self, list(self.ready))
            self.jobs[job.name] = container
            if job.attach:
                self.ready.append(checked(container, ctx.name(job.name)))
        self.register_outputs({"container": self.container.name})
