"""pulumi-docker resources carried out with the Docker SDK, as the provider would (create and delete).

The semantics follow the provider's sources: ``Container`` is the bridged Terraform provider
(kreuzwerker/terraform-provider-docker, ``resource_docker_container_funcs.go``), ``Image`` the native
provider (pulumi-docker ``provider/image.go``). Every input a resource may carry is listed in
:data:`CONTAINER_INPUTS` and friends; an input that is set but not carried out here raises
:class:`~tests.docker.replay.errors.ReplayError`, so the replay cannot pass by ignoring what the program asks for.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from tests.docker.replay.errors import ReplayError, check_inputs

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"

# Inputs carried out, per resource type (nested blocks: their own sets below).
NETWORK_INPUTS = {"name"}
VOLUME_INPUTS = {"name"}
IMAGE_INPUTS = {"imageName", "build", "skipPush", "buildOnPreview"}  # buildOnPreview: preview only
IMAGE_BUILD_INPUTS = {"context", "dockerfile", "args", "builderVersion"}
CONTAINER_INPUTS = {
    "name",
    "hostname",
    "image",
    "envs",
    "command",
    "entrypoints",
    "networksAdvanced",
    "ports",
    "healthcheck",
    "wait",
    "waitTimeout",
    "restart",
    "init",
    "volumes",
    "uploads",
    "labels",
    "attach",
    "logs",
    "mustRun",
    "rm",
    "start",
    "destroyGraceSeconds",
    "stopTimeout",
    "stopSignal",
    "removeVolumes",
    "user",
    "workingDir",
}
NETWORK_ADVANCED_INPUTS = {"name", "aliases"}
PORT_INPUTS = {"internal", "external", "ip", "protocol"}
HEALTHCHECK_INPUTS = {"tests", "interval", "timeout", "startPeriod", "startInterval", "retries"}
VOLUME_MOUNT_INPUTS = {"volumeName", "hostPath", "containerPath", "readOnly"}
UPLOAD_INPUTS = {"file", "content", "contentBase64", "executable"}
LABEL_INPUTS = {"label", "value"}

# The Terraform provider's defaults for inputs the program leaves unset.
MUST_RUN_REFRESH_S = 15.0  # container_read_refresh_timeout_milliseconds
DEFAULT_WAIT_TIMEOUT_S = 60


class PartialCreateError(ReplayError):
    """A container was created but its create failed afterwards (the provider records it, tainted)."""

    def __init__(self, message: str, resource_id: str) -> None:
        super().__init__(message)
        self.resource_id = resource_id


def duration_ns(text: str) -> int:
    """A Go duration (``5s``, ``1500ms``, ``1m30s``) in nanoseconds, as Docker's API wants it."""
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ReplayError(f"not a Go duration: {text!r}")
    return int(sum(float(n) * units[u] for n, u in parts))


class DockerResources:
    """Creates and deletes the pulumi-docker resources of one program run on one engine."""

    def __init__(self, client: docker.DockerClient, docker_cli: str, log: Callable[[str], None] = print) -> None:
        self.client = client
        self.api = client.api
        self.docker_cli = docker_cli
        self.log = log
        self.build_seconds: dict[str, float] = {}

    # ---------------------------------------------------------------------------------------------------
    # create
    # ---------------------------------------------------------------------------------------------------
    def create(self, typ: str, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Carry out one resource; returns its id and its outputs (inputs plus what the provider computes)."""
        if typ == NETWORK:
            check_inputs(typ, name, inputs, NETWORK_INPUTS)
            net = self.client.networks.create(inputs["name"], driver="bridge", check_duplicate=True)
            return net.id, {**inputs, "driver": "bridge"}
        if typ == VOLUME:
            check_inputs(typ, name, inputs, VOLUME_INPUTS)
            vol = self.client.volumes.create(inputs["name"])
            return vol.name, {**inputs, "mountpoint": vol.attrs.get("Mountpoint", "")}
        if typ == IMAGE:
            return self._build(name, inputs)
        if typ == CONTAINER:
            return self._container(name, inputs)
        raise ReplayError(f"resource type {typ} ({name}) is not carried out by the replay")

    def _build(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``docker.Image``: a BuildKit build of the program's context and Dockerfile, not pushed.

        The provider tars the context with ``<Dockerfile>.dockerignore`` (else ``.dockerignore``) and runs a
        BuildKit build; Debian's docker CLI with ``DOCKER_BUILDKIT=1`` does the same. ``repoDigest`` of a
        local image is its image ID (pulumi-docker >= 4.4).
        """
        check_inputs(IMAGE, name, inputs, IMAGE_INPUTS)
        build = dict(inputs.get("build") or {})
        check_inputs(IMAGE, f"{name}.build", build, IMAGE_BUILD_INPUTS)
        if not inputs.get("skipPush"):
            raise ReplayError(f"image {name}: pushing to a registry is not carried out (set skip_push)")
        if build.get("builderVersion") not in (None, "BuilderBuildKit"):
            raise ReplayError(f"image {name}: builder {build.get('builderVersion')!r} is not carried out")
        image_name = inputs["imageName"]
        context = build.get("context", ".")
        dockerfile = build.get("dockerfile") or os.path.join(context, "Dockerfile")
        argv = [self.docker_cli, "build", "--file", dockerfile, "--tag", image_name]
        for key, value in sorted((build.get("args") or {}).items()):
            argv += ["--build-arg", f"{key}={value}"]
        argv.append(context)
        t0 = time.monotonic()
        done = subprocess.run(
            argv, env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True, check=False
        )
        self.build_seconds[image_name] = time.monotonic() - t0
        if done.returncode != 0:
            raise ReplayError(f"image {name}: build failed\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        image_id = self.client.images.get(image_name).id
        self.log(f"image {image_name}: built in {self.build_seconds[image_name]:.1f} s ({image_id[:19]})")
        return image_name, {**inputs, "repoDigest": image_id, "baseImageName": image_name}

    def _container(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        check_inputs(CONTAINER, name, inputs, CONTAINER_INPUTS)
        config = self._container_config(name, inputs)
        cid = self.api.create_container(**config)["Id"]
        try:
            return self._start_container(name, cid, inputs)
        except PartialCreateError:
            raise
        except Exception as e:  # the container exists: report it for destroy
            raise PartialCreateError(f"container {inputs['name']}: {e}", cid) from e

    def _start_container(self, name: str, cid: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Networks, uploads, start, then wait for health, for the exit (``attach``) or for running."""
        attach = bool(inputs.get("attach", False))
        # As the provider: created on the default bridge, then moved to the networks it names (with aliases).
        networks = inputs.get("networksAdvanced") or []
        if networks:
            self.api.disconnect_container_from_network(cid, "bridge")
        for net in networks:
            check_inputs(CONTAINER, f"{name}.networksAdvanced", net, NETWORK_ADVANCED_INPUTS)
            self.api.connect_container_to_network(cid, net["name"], aliases=list(net.get("aliases") or []) or None)
        for upload in inputs.get("uploads") or []:
            self._upload(name, cid, upload)
        outputs: dict[str, Any] = {**inputs}
        if not inputs.get("start", True):
            return cid, outputs
        self.api.start(cid)
        if inputs.get("wait"):
            self._wait_healthy(name, cid, int(inputs.get("waitTimeout") or DEFAULT_WAIT_TIMEOUT_S))
        if attach:
            status = self.api.wait(cid)  # the provider waits for "not running"; the exit code is not checked
            if inputs.get("logs"):
                outputs["containerLogs"] = self.api.logs(cid, stdout=True, stderr=True).decode(errors="replace")
            if inputs.get("rm"):
                self._remove(cid)
            outputs["exitCode"] = int(status["StatusCode"])
            self.log(f"job {inputs['name']}: exited {outputs['exitCode']}")
            return cid, outputs
        # Read after create: with must_run (the default) the container has to be running.
        state = self._state_when_settled(cid)
        if not state.get("Running"):
            outputs["exitCode"] = int(state.get("ExitCode", 0))
            if inputs.get("mustRun", True):
                raise ReplayError(
                    f"container {inputs['name']} is not running (exit code {outputs['exitCode']}):\n" + self._tail(cid)
                )
        outputs["networkData"] = self._network_data(cid)
        self.log(f"container {inputs['name']}: started")
        return cid, outputs

    def _container_config(self, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments of ``APIClient.create_container`` for the container's inputs (provider semantics)."""
        port_bindings: dict[str, list[tuple[str, int]]] = {}
        exposed: list[tuple[int, str]] = []
        for port in inputs.get("ports") or []:
            check_inputs(CONTAINER, f"{name}.ports", port, PORT_INPUTS)
            proto = port.get("protocol", "tcp")
            key = f"{int(port['internal'])}/{proto}"
            port_bindings.setdefault(key, []).append((port.get("ip", "0.0.0.0"), int(port["external"])))
            exposed.append((int(port["internal"]), proto))
        binds: list[str] = []
        for vol in inputs.get("volumes") or []:
            check_inputs(CONTAINER, f"{name}.volumes", vol, VOLUME_MOUNT_INPUTS)
            source = vol.get("volumeName") or vol.get("hostPath")
            if not source:
                raise ReplayError(f"container {name}: a volume needs volume_name or host_path")
            binds.append(f"{source}:{vol['containerPath']}:{'ro' if vol.get('readOnly') else 'rw'}")
        restart = inputs.get("restart", "no")
        host_config = self.api.create_host_config(
            port_bindings=port_bindings or None,
            binds=binds or None,
            restart_policy={"Name": restart} if restart != "no" else None,
            init=bool(inputs.get("init", False)),
        )
        labels = {}
        for item in inputs.get("labels") or []:
            check_inputs(CONTAINER, f"{name}.labels", item, LABEL_INPUTS)
            labels[item["label"]] = item["value"]
        config: dict[str, Any] = {
            "image": inputs["image"],
            "name": inputs["name"],
            "hostname": inputs.get("hostname") or None,
            "environment": list(inputs.get("envs") or []) or None,
            "command": list(inputs["command"]) if inputs.get("command") else None,
            "entrypoint": list(inputs["entrypoints"]) if inputs.get("entrypoints") else None,
            "ports": [(p, proto) for p, proto in exposed] or None,
            "labels": labels or None,
            "host_config": host_config,
            "healthcheck": self._healthcheck(name, inputs.get("healthcheck")),
            "user": inputs.get("user") or None,
            "working_dir": inputs.get("workingDir") or None,
            "stop_signal": inputs.get("stopSignal") or None,
        }
        if "stopTimeout" in inputs:
            config["stop_timeout"] = int(inputs["stopTimeout"])
        return config

    @staticmethod
    def _healthcheck(name: str, hc: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not hc:
            return None
        check_inputs(CONTAINER, f"{name}.healthcheck", hc, HEALTHCHECK_INPUTS)
        result: dict[str, Any] = {"Test": list(hc["tests"]), "Retries": int(hc.get("retries", 0))}
        for key, api_key in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("startPeriod", "StartPeriod"),
            ("startInterval", "StartInterval"),  # Docker Engine >= 25 (API 1.44); older engines ignore it
        ):
            if key in hc:
                result[api_key] = duration_ns(hc[key])
        return result

    def _upload(self, name: str, cid: str, upload: Mapping[str, Any]) -> None:
        check_inputs(CONTAINER, f"{name}.uploads", upload, UPLOAD_INPUTS)
        given = [k for k in ("content", "contentBase64") if upload.get(k)]
        if len(given) != 1:
            raise ReplayError(f"container {name}: upload {upload.get('file')} needs exactly one of content/base64")
        data = upload["content"].encode() if given[0] == "content" else base64.b64decode(upload["contentBase64"])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o744 if upload.get("executable") else 0o644, time.time()
            tar.addfile(info, io.BytesIO(data))
        self.api.put_archive(cid, "/", buf.getvalue())

    def _wait_healthy(self, name: str, cid: str, timeout_s: int) -> None:
        """``wait``: poll the container's health every second until healthy, within ``wait_timeout``."""
        deadline = time.monotonic() + timeout_s
        t0 = time.monotonic()
        while True:
            state = self.api.inspect_container(cid)["State"]
            health = state.get("Health")
            if health is None:
                raise ReplayError(f"container {name}: 'wait' is set but the container has no healthcheck")
            if health.get("Status") == "healthy":
                self.log(f"container {name}: healthy after {time.monotonic() - t0:.1f} s")
                return
            if time.monotonic() > deadline:
                last = (health.get("Log") or [{}])[-1]
                raise ReplayError(
                    f"container {name}: container failed to be in healthy state within {timeout_s} s "
                    f"(status {health.get('Status')}, last probe: {str(last.get('Output', ''))[-500:]!r})\n"
                    + self._tail(cid)
                )
            time.sleep(1)

    def _state_when_settled(self, cid: str) -> dict[str, Any]:
        """The container's state once it runs, or once it has stopped (bounded like the provider's read)."""
        deadline = time.monotonic() + MUST_RUN_REFRESH_S
        time.sleep(0.1)
        while True:
            state: dict[str, Any] = self.api.inspect_container(cid)["State"]
            if state.get("Running") or state.get("Status") in ("exited", "dead") or time.monotonic() > deadline:
                return state
            time.sleep(0.1)

    def _network_data(self, cid: str) -> list[dict[str, str]]:
        nets = self.api.inspect_container(cid)["NetworkSettings"]["Networks"]
        return [
            {"networkName": n, "ipAddress": v.get("IPAddress", ""), "gateway": v.get("Gateway", "")}
            for n, v in nets.items()
        ]

    def _tail(self, cid: str, lines: int = 40) -> str:
        try:
            return self.api.logs(cid, stdout=True, stderr=True, tail=lines).decode(errors="replace")
        except docker.errors.APIError as e:
            return f"(no logs: {e})"

    # ---------------------------------------------------------------------------------------------------
    # delete
    # ---------------------------------------------------------------------------------------------------
    def delete(self, typ: str, rid: str, outputs: Mapping[str, Any]) -> None:
        """Delete one resource as the provider's delete does."""
        if typ == CONTAINER:
            self._delete_container(rid, outputs)
        elif typ == NETWORK:
            self._retry(f"network {outputs.get('name')}", lambda: self.api.remove_network(rid))
        elif typ == VOLUME:
            self._retry(f"volume {rid}", lambda: self.api.remove_volume(rid))
        elif typ == IMAGE:
            pass  # the native provider's Delete is a no-op: built images stay in the engine's cache
        else:
            raise ReplayError(f"resource type {typ} cannot be deleted by the replay")

    def _delete_container(self, cid: str, outputs: Mapping[str, Any]) -> None:
        """Stop with ``destroy_grace_seconds`` (0 when unset: the provider's default), then force-remove."""
        if not outputs.get("attach"):
            grace = int(outputs.get("destroyGraceSeconds") or 0)
            try:
                self.api.stop(cid, timeout=grace)
            except docker.errors.NotFound:
                return
        self._remove(cid, volumes=bool(outputs.get("removeVolumes", True)))

    def _remove(self, cid: str, volumes: bool = True) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(cid, force=True, v=volumes)

    def _retry(self, what: str, call: Callable[[], Any], timeout_s: float = 20.0) -> None:
        """Removal of a network or volume that is still in use fails; retry briefly, then report it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                call()
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as e:
                if time.monotonic() > deadline:
                    raise ReplayError(f"could not delete {what}: {e.explanation or e}") from None
                time.sleep(1)
