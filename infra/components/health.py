"""Render the catalog's health checks as Docker healthchecks (one renderer for every container).

``catalog.HealthCheck`` says *what* healthy means; this module says how to probe it inside a container:

* ``sql`` -> ``pg_isready`` over TCP (the official image's init phase listens on the socket only, so TCP
  answers only once the init scripts, which create the databases, have run);
* ``s3`` -> ``mc ready local`` (the MinIO image ships ``mc`` but no curl; it probes MinIO's health API);
* ``http`` -> GET of the path on the container's own port with Python (our images) or curl (LocalStack);
* ``airflow-component`` -> ``airflow jobs check --job-type <Job> --local``.

The Airflow CLI needs a few seconds just to import, so those probes run at least every 30 s with a 30 s
timeout, polling at the catalog's interval during the start period (Docker's ``start_interval``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi_docker as docker

from infra import catalog

HttpProbe = Literal["python", "curl"]

AIRFLOW_JOB_TYPES = {
    "scheduler": "SchedulerJob",
    "dag_processor": "DagProcessorJob",
    "triggerer": "TriggererJob",
}
CLI_PROBE_MIN_S = 30.0  # floor of interval and timeout for probes that start the Airflow CLI


def duration(seconds: float) -> str:
    """Docker duration string (``5s``, ``1500ms``)."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def http_probe(url: str, timeout_s: float, probe: HttpProbe = "python") -> list[str]:
    """Healthcheck test that fails unless GET ``url`` answers 2xx/3xx."""
    if probe == "curl":
        curl = ["curl", "--fail", "--silent", "--show-error", "--max-time", f"{timeout_s:g}", "-o", "/dev/null"]
        return ["CMD", *curl, url]
    script = f"import urllib.request; urllib.request.urlopen({url!r}, timeout={timeout_s:g})"
    return ["CMD", "python", "-c", script]


@dataclass(frozen=True)
class RenderedHealthcheck:
    """A Docker healthcheck as plain data (``tests`` plus timings), convertible to Pulumi args."""

    tests: list[str]
    interval: str
    timeout: str
    start_period: str
    start_interval: str
    retries: int

    def args(self) -> docker.ContainerHealthcheckArgs:
        """The ``docker.Container`` healthcheck argument."""
        return docker.ContainerHealthcheckArgs(
            tests=self.tests,
            interval=self.interval,
            timeout=self.timeout,
            start_period=self.start_period,
            start_interval=self.start_interval,
            retries=self.retries,
        )

    def as_inputs(self) -> dict[str, object]:
        """The healthcheck as a resource's camelCase inputs (what Pulumi mocks receive)."""
        return {
            "tests": self.tests,
            "interval": self.interval,
            "timeout": self.timeout,
            "startPeriod": self.start_period,
            "startInterval": self.start_interval,
            "retries": self.retries,
        }


def _timings(health: catalog.HealthCheck) -> tuple[float, float]:
    """Interval and timeout in seconds: the catalog's, floored for probes that start the Airflow CLI."""
    if health.kind == "airflow-component":
        return max(health.interval_s, CLI_PROBE_MIN_S), max(health.timeout_s, CLI_PROBE_MIN_S)
    return health.interval_s, health.timeout_s


def render(health: catalog.HealthCheck, port: int | None = None, probe: HttpProbe = "python") -> RenderedHealthcheck:
    """Render one catalog health check for a container listening on ``port``."""
    interval, timeout = _timings(health)
    if health.kind == "sql":
        tests = ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(port), "-U", catalog.POSTGRES_USER, "-d", "postgres"]
    elif health.kind == "s3":
        tests = ["CMD", "mc", "ready", "local"]
    elif health.kind == "http":
        if port is None:
            raise ValueError("an http health check needs the container's port")
        tests = http_probe(f"http://127.0.0.1:{port}{health.path}", timeout, probe)
    elif health.kind == "airflow-component":
        job = AIRFLOW_JOB_TYPES[health.component]
        tests = ["CMD", "airflow", "jobs", "check", "--job-type", job, "--local"]
    else:  # pragma: no cover - HealthKind is a closed Literal
        raise ValueError(f"unknown health check kind {health.kind!r}")
    return RenderedHealthcheck(
        tests=tests,
        interval=duration(interval),
        timeout=duration(timeout),
        start_period=duration(health.start_period_s),
        start_interval=duration(health.interval_s),
        retries=health.retries,
    )


def for_service(service: str, topo: catalog.Topology, probe: HttpProbe = "python") -> RenderedHealthcheck:
    """Docker healthcheck of a catalog service, probing its port inside its own container."""
    svc = catalog.SERVICES[service]
    port = topo.port(service) if svc.port is not None else None
    return render(svc.health, port, probe)


def wait_timeout_s(health: catalog.HealthCheck) -> int:
    """How long ``docker.Container(wait=True)`` may wait: the start period plus every retry, plus a margin."""
    interval, timeout = _timings(health)
    return int(health.start_period_s + health.retries * (interval + timeout)) + 60


def for_job(tests: list[str], like: catalog.HealthCheck) -> RenderedHealthcheck:
    """Healthcheck of a one-shot job container: ``tests`` probes what the job acts on, with ``like``'s timings.

    A job exits long before Docker would mark it unhealthy; the probe documents (and, while the job runs,
    shows in ``docker ps``) what the job needs.
    """
    return RenderedHealthcheck(
        tests=tests,
        interval=duration(like.interval_s),
        timeout=duration(max(like.timeout_s, CLI_PROBE_MIN_S) if tests[1:2] == ["airflow"] else like.timeout_s),
        start_period=duration(like.start_period_s),
        start_interval=duration(like.interval_s),
        retries=like.retries,
    )
