"""``up``'s start-up sequence: every service started in dependency order and gated on its health.

A service starts once the services it depends on are healthy: first its one-shot jobs (e.g. ``airflow db
migrate``), one after the other, each required to exit 0; then its program. Once the program runs, the
service's hooks (:mod:`infra.local.service_hooks`) say when it answers, what to provision then and what
health it must reach. A service that crashes :data:`START_CRASHES` times while starting, a failed job, a
known fatal answer or a timeout ends ``up`` with a :class:`~infra.local.errors.StackError` that names the
service, what was checked, the last result and the tail of its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from infra import catalog
from infra.local import health
from infra.local.errors import StackError, tail
from infra.local.programs import LocalService
from infra.local.service_hooks import HookContext, hooks_for
from infra.local.supervisor import ProcessInfo, SupervisorClient

POLL_S = 0.25
#: ``up`` stops waiting for a service that crashed this many times while starting (supervisor would retry on).
START_CRASHES = 3


@dataclass
class ServiceStart:
    """Start-up progress of one service."""

    service: LocalService
    phase: str = "waiting"  # waiting -> jobs -> starting -> healthy
    job_index: int = 0
    started: float = 0.0  # monotonic time the current phase began
    last: health.Health | None = None
    ready_hook_done: bool = False
    job_wall: float = 0.0  # wall-clock time the current job was started
    crashes: set[float] = field(default_factory=set)  # start times of the instances that exited while starting


def startup_error(
    name: str, what: str, topology: catalog.Topology, log: Path, last: health.Health | None, info: ProcessInfo | None
) -> StackError:
    """The error for service ``name`` that ``what`` (e.g. "did not start within 180 s"), with its log's tail."""
    hc = catalog.SERVICES[name].health
    at = f" at {topology.url(name, hc.path)}" if catalog.SERVICES[name].port and hc.kind == "http" else ""
    lines = [f"service {name} {what}.", f"  checked: {hc.describe()}{at}"]
    if last is not None:
        lines.append(f"  last result: {last.detail}")
    if info is not None:
        lines.append(f"  process {info.name}: {info.state}" + (f" ({info.spawnerr})" if info.spawnerr else ""))
    lines.append(f"  log: {log}")
    text = tail(log)
    if text:
        lines += [f"--- last lines of {log} ---", text]
    return StackError("\n".join(lines))


class StartupSequence:
    """One run of the start-up sequence over ``services`` (see the module docstring)."""

    def __init__(
        self,
        services: dict[str, LocalService],
        client: SupervisorClient,
        timeout_s: float,
        context: Callable[[str], HookContext],
        log_path: Callable[[str], Path],
        out: Callable[[str], None],
    ) -> None:
        self.client = client
        self.timeout = timeout_s
        self.context = context
        self.log_path = log_path
        self.out = out
        self.starts = {n: ServiceStart(s) for n, s in services.items()}
        self.timings: dict[str, float] = {}

    def run(self, t0: float) -> dict[str, float]:
        """Start everything; returns the seconds from ``t0`` to each service's health. Raises StackError."""
        self._adopt_running(self.client.all_info())
        while True:
            info = self.client.all_info()
            airflow_doc: dict[str, Any] = {}
            progressed = False
            for name, st in self.starts.items():
                if st.phase == "waiting":
                    progressed |= self._begin(name, st)
                elif st.phase == "jobs":
                    progressed |= self._advance_jobs(name, st, info)
                elif st.phase == "starting":
                    progressed |= self._advance_program(name, st, info, airflow_doc, t0)
            if all(st.phase == "healthy" for st in self.starts.values()):
                return self.timings
            if not progressed:
                time.sleep(POLL_S)

    def _adopt_running(self, info: dict[str, ProcessInfo]) -> None:
        """Already running (``up`` twice): no jobs, just the health gate."""
        for st in self.starts.values():
            pi = info.get(st.service.program.name)
            if pi is not None and pi.state in ("RUNNING", "STARTING", "BACKOFF"):
                st.phase, st.started, st.ready_hook_done = "starting", time.monotonic(), False

    def _fail(
        self, name: str, program: str, what: str, last: health.Health | None, info: ProcessInfo | None
    ) -> NoReturn:
        topology = self.context(name).topology
        raise startup_error(name, what, topology, self.log_path(program), last, info)

    def _begin(self, name: str, st: ServiceStart) -> bool:
        """Start the first job (or the program) once every dependency is healthy."""
        deps = [d for d in catalog.SERVICES[name].depends_on if d in self.starts]
        if not all(self.starts[d].phase == "healthy" for d in deps):
            return False
        st.started = time.monotonic()
        if st.service.jobs_before:
            st.phase, st.job_wall = "jobs", time.time()
            self.client.start(st.service.jobs_before[0].name)
        else:
            st.phase = "starting"
            self.client.start(st.service.program.name)
        return True

    def _advance_jobs(self, name: str, st: ServiceStart, info: dict[str, ProcessInfo]) -> bool:
        """The current job exited 0: start the next one, or the program. A failed or overdue job fails ``up``."""
        job = st.service.jobs_before[st.job_index]
        ji = info.get(job.name)
        fresh = ji is not None and ji.start >= st.job_wall - 1
        if ji is not None and fresh and ji.state == "EXITED" and ji.exitstatus == 0:
            st.job_index += 1
            if st.job_index < len(st.service.jobs_before):
                st.job_wall = time.time()
                self.client.start(st.service.jobs_before[st.job_index].name)
            else:
                st.phase, st.started = "starting", time.monotonic()
                self.client.start(st.service.program.name)
            return True
        if ji is None or (fresh and ji.state in ("FATAL", "BACKOFF", "EXITED")):
            status = f"exit status {ji.exitstatus}" if ji else "missing"
            self._fail(name, job.name, f"could not start: its job {job.name} failed ({status})", None, ji)
        if time.monotonic() - st.started > self.timeout:
            self._fail(name, job.name, f"could not start: job {job.name} ran over {self.timeout:.0f} s", None, ji)
        return False

    def _advance_program(
        self, name: str, st: ServiceStart, info: dict[str, ProcessInfo], airflow_doc: dict[str, Any], t0: float
    ) -> bool:
        """The program runs: check its health (via the hooks); healthy ends its start-up."""
        prog = st.service.program
        pi = self._running(name, st, info.get(prog.name))
        if pi is None:
            return False
        ctx = self.context(name)
        result = self._health(name, st, pi, ctx, airflow_doc)
        st.last = result
        hooks = st.service.hooks or hooks_for(name)
        failure = hooks.failure(ctx)
        if failure:
            self._fail(name, prog.name, failure, result, pi)
        if result.ok:
            st.phase = "healthy"
            self.timings[name] = time.monotonic() - t0
            self.out(f"  {name:<22} healthy at {self.timings[name]:5.1f} s")
            return True
        for detail, meaning in hooks.fatal_details.items():
            if detail in result.detail:
                self._fail(name, prog.name, meaning, result, pi)
        if time.monotonic() - st.started > self.timeout:
            self._fail(name, prog.name, f"did not become healthy within {self.timeout:.0f} s", result, pi)
        return False

    def _running(self, name: str, st: ServiceStart, pi: ProcessInfo | None) -> ProcessInfo | None:
        """The program's process info once it is RUNNING (None meanwhile); crashes and give-ups fail ``up``."""
        prog = st.service.program
        if pi is None or pi.state == "FATAL":
            self._fail(name, prog.name, "exited during start-up (gave up restarting)", st.last, pi)
        if pi.state in ("BACKOFF", "EXITED"):  # supervisor restarts it, with a growing back-off
            st.crashes.add(pi.start)
            if len(st.crashes) >= START_CRASHES:
                self.client.stop(prog.name)
                what = f"exited {len(st.crashes)} times during start-up (stopped instead of retrying on)"
                self._fail(name, prog.name, what, st.last, pi)
        if pi.state == "STOPPED":  # e.g. stopped by hand while we were waiting
            self.client.start(prog.name)
            return None
        if pi.state != "RUNNING":
            if time.monotonic() - st.started > self.timeout:
                self._fail(name, prog.name, f"did not start within {self.timeout:.0f} s", st.last, pi)
            return None
        return pi

    def _health(
        self, name: str, st: ServiceStart, pi: ProcessInfo, ctx: HookContext, airflow_doc: dict[str, Any]
    ) -> health.Health:
        """Airflow components: their heartbeat in the API server's health document; others: their hooks."""
        hc = catalog.SERVICES[name].health
        if hc.kind == "airflow-component":
            if not airflow_doc:
                try:
                    airflow_doc.update(health.airflow_health(ctx.topology))
                except Exception as e:  # API server restarting: just retry
                    return health.Health(False, f"Airflow API: {e}")
            return health.check_airflow_component(ctx.topology, hc.component, pi.start, airflow_doc)
        hooks = st.service.hooks or hooks_for(name)
        if st.ready_hook_done:
            return hooks.started(ctx)
        result = hooks.ready(ctx)
        if not result.ok:
            return result
        if hooks.on_ready is not None:
            hooks.on_ready(ctx)
        st.ready_hook_done = True
        return hooks.started(ctx)
