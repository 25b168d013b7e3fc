"""Find (or, as root, start) the Docker engine that the Docker tier of the test suite runs against.

:func:`ensure_engine` returns an :class:`Engine`: a docker SDK client that answered a ping, the path of a
docker CLI that can build with BuildKit, and whether this process started the daemon. It raises
:class:`EngineUnavailable` with a reason when no engine can be had; the pytest conftest turns that into a
skip, or into a failure when ``CI=true`` (a CI job that meant to run the Docker tier must not pass
vacuously).

Order of attempts:

1. ``DOCKER_HOST`` if set, else the default socket ``/var/run/docker.sock``: ping it with the SDK.
2. Nothing answers, ``DOCKER_HOST`` is unset and we run as root: install Debian's ``docker.io`` with
   apt-get when ``dockerd`` is missing, start ``dockerd --data-root <cache>/docker --storage-driver overlay2``
   in the background (log: ``<cache>/dockerd.log``) and wait until it answers. ``<cache>`` is
   ``$MLOPS_DOCKER_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/mlops-platform``.
3. Otherwise: :class:`EngineUnavailable`.

Builds go through the CLI, not ``docker-py``'s ``images.build``: the SDK drives the legacy builder, which
ignores per-Dockerfile ``.dockerignore`` files and sends the whole checkout as context. Debian's 20.10
client (``/usr/bin/docker``) has BuildKit built in; newer static clients need the buildx plugin.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
# Preferred first: Debian's client (BuildKit built in), then whatever `docker` is on PATH.
CLI_CANDIDATES = ("/usr/bin/docker",)
START_TIMEOUT_S = 60.0
APT_TIMEOUT_S = 900.0

Log = Callable[[str], None]


class EngineUnavailable(RuntimeError):  # noqa: N818 - the name the conftest and the lead use
    """No usable Docker engine (or no BuildKit-capable CLI); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cache_dir() -> Path:
    """``$MLOPS_DOCKER_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/mlops-platform`` (not created)."""
    explicit = os.environ.get("MLOPS_DOCKER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "mlops-platform"


def is_ci() -> bool:
    """True when ``CI`` is set to a true value (``true``, ``1``, ``yes``), as CI services do."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def is_root() -> bool:
    """True when running as root (needed to install and start ``dockerd``)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Engine:
    """A Docker engine that answers, and how to drive it."""

    client: docker.DockerClient
    cli: str
    docker_host: str
    started: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def cli_env(self) -> dict[str, str]:
        """Environment for running :attr:`cli`: same engine as :attr:`client`, BuildKit on."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.docker_host
        env["DOCKER_BUILDKIT"] = "1"
        return env

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the daemon if this process started it (SIGTERM, then SIGKILL); otherwise do nothing."""
        if not self.started or self.process is None:
            return
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.started = False


def _ping(docker_host: str | None, timeout_s: float = 5.0) -> docker.DockerClient | None:
    """A client for ``docker_host`` (``None``: from the environment) if the engine answers a ping."""
    try:
        if docker_host is None:
            client = docker.from_env(timeout=int(max(timeout_s, 1)))
        else:
            client = docker.DockerClient(base_url=docker_host, timeout=int(max(timeout_s, 1)))
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except Exception:  # connection refused, missing socket, TLS error, HTTP error: all mean "no engine"
        client.close()
        return None
    # Operations such as builds and container waits take longer than a ping.
    client.api.timeout = 600
    return client


def _cli_works(cli: str) -> bool:
    """True if ``DOCKER_BUILDKIT=1 <cli> build --help`` succeeds (a client without buildx refuses it)."""
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    try:
        done = subprocess.run([cli, "build", "--help"], env=env, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    output = (done.stdout + done.stderr).decode(errors="replace")
    return done.returncode == 0 and "buildx component is missing" not in output


def find_buildkit_cli() -> str | None:
    """Path of a docker CLI that builds with BuildKit: ``$MLOPS_DOCKER_CLI``, ``/usr/bin/docker``, PATH's."""
    candidates: list[str] = []
    if os.environ.get("MLOPS_DOCKER_CLI"):
        candidates.append(os.environ["MLOPS_DOCKER_CLI"])
    candidates.extend(CLI_CANDIDATES)
    on_path = shutil.which("docker")
    if on_path:
        candidates.append(on_path)
    seen: set[str] = set()
    for cli in candidates:
        if cli in seen or not (os.path.isfile(cli) and os.access(cli, os.X_OK)):
            continue
        seen.add(cli)
        if _cli_works(cli):
            return cli
    return None


def _apt_install_docker(log: Log) -> None:
    """``apt-get install docker.io`` (Debian's engine and its 20.10 client); raises EngineUnavailable."""
    if shutil.which("apt-get") is None:
        raise EngineUnavailable("dockerd is not installed and apt-get is not available to install docker.io")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("docker engine: installing Debian's docker.io with apt-get (~40 s)")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "docker.io"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable(f"{' '.join(command)} timed out after {APT_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-800:]
            raise EngineUnavailable(f"{' '.join(command)} failed (exit {done.returncode}): {tail}")


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _start_dockerd(cache: Path, log: Log, timeout_s: float) -> tuple[subprocess.Popen[bytes], docker.DockerClient]:
    """Start dockerd in the background on the default socket and wait until it answers."""
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if dockerd is None:
        _apt_install_docker(log)
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise EngineUnavailable("docker.io was installed but dockerd is still missing")
    cache.mkdir(parents=True, exist_ok=True)
    log_path = cache / "dockerd.log"
    command = [dockerd, "--data-root", str(cache / "docker"), "--storage-driver", "overlay2"]
    log(f"docker engine: starting {' '.join(command)} (log: {log_path})")
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineUnavailable(f"dockerd exited with {process.returncode}: {_tail(log_path)}")
        client = _ping(DEFAULT_HOST, timeout_s=2)
        if client is not None:
            return process, client
        time.sleep(0.5)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    raise EngineUnavailable(f"dockerd did not answer within {timeout_s:.0f} s: {_tail(log_path)}")


def ensure_engine(*, start: bool = True, timeout_s: float = START_TIMEOUT_S, log: Log = print) -> Engine:
    """A Docker engine that answers plus a BuildKit-capable CLI; raises :class:`EngineUnavailable`.

    ``start=False`` never installs or starts a daemon. The caller owns :meth:`Engine.stop` (a no-op unless
    this call started the daemon).
    """
    docker_host = os.environ.get("DOCKER_HOST") or None
    client = _ping(docker_host)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    if client is None:
        where = docker_host or DEFAULT_HOST
        if docker_host is not None:
            raise EngineUnavailable(f"no Docker engine answers at DOCKER_HOST={docker_host}")
        if not start:
            raise EngineUnavailable(f"no Docker engine answers at {where}")
        if not is_root():
            raise EngineUnavailable(f"no Docker engine answers at {where} and only root may start one here")
        cache = cache_dir()
        process, client = _start_dockerd(cache, log, timeout_s)
        log_path = cache / "dockerd.log"

    cli = find_buildkit_cli()
    if cli is None and is_root() and start:
        _apt_install_docker(log)  # Debian's docker.io ships /usr/bin/docker 20.10 with BuildKit built in
        cli = find_buildkit_cli()
    if cli is None:
        engine = Engine(client=client, cli="", docker_host=docker_host or DEFAULT_HOST, started=process is not None)
        engine.process = process
        engine.stop()
        raise EngineUnavailable(
            "no docker CLI that builds with BuildKit (Debian's docker.io client /usr/bin/docker, or a client "
            "with the buildx plugin; set MLOPS_DOCKER_CLI to choose one)"
        )
    return Engine(
        client=client,
        cli=cli,
        docker_host=docker_host or DEFAULT_HOST,
        started=process is not None,
        process=process,
        log_path=log_path,
    )
