"""The embedded stack: the catalog's services as supervised local processes, with a Python API.

stack = Stack(StackSettings())
timings = stack.up()          # start what is not running, gate each service on its health check
stack.status()                # {"healthy": bool, "services": {name: {...}}, ...}
stack.lambda_endpoints()      # the API as a Lambda in LocalStack: Function URL, REST API (v1), curl commands
run_id = stack.trigger_dag("etl_breast_cancer")
stack.wait_for_dag_run("etl_breast_cancer", run_id, on_progress=print)
stack.down()                  # stop everything, keep the data
stack.destroy()               # stop everything and delete the state directory
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from infra import access, catalog
from infra.local import postgres
from infra.local.airflow_client import AirflowClient, DagRunProgress, dag_run_health
from infra.local.errors import StackError, tail
from infra.local.layout import StatePaths, load_or_create_credentials, write_private
from infra.local.memory import stack_memory
from infra.local.ports import listener_of, port_is_free
from infra.local.programs import (
    BuildContext,
    LocalService,
    Program,
    all_programs,
    build_services,
)
from infra.local.provisioning import ensure_buckets, ensure_databases
from infra.local.service_hooks import HookContext
from infra.local.service_status import service_health
from infra.local.settings import StackSettings
from infra.local.shutdown import remove_seaweed_sockets, stop_in_waves
from infra.local.startup import StartupSequence
from infra.local.supervisor import (
    ProcessInfo,
    SupervisorClient,
    clear_stale,
    launch,
    read_pid,
    render_config,
    stack_processes,
    supervisord_env,
    terminate,
    write_secret_files,
)

POLL_S = 0.25


class Stack:
    """One embedded stack, identified by its state directory."""

    def __init__(self, settings: StackSettings | None = None, out: Callable[[str], None] | None = None):
        self.settings = settings or StackSettings()
        self.paths = StatePaths(self.settings.state_dir)
        self.topology = self.settings.topology()
        self._out = out or (lambda _msg: None)
        self._creds: catalog.Credentials | None = None
        self._lock_depth = 0
        self._lambda_job: Any = None  # infra.aws_lambda.local_deployment.LambdaDeployment while `up` runs

    @contextlib.contextmanager
    def locked(self, timeout: float | None = None, create: bool = True) -> Iterator[None]:
        """Hold this stack's lock (``up``/``down``/``destroy`` of two processes must not interleave).

        Re-entrant within one :class:`Stack`; waits at most ``timeout`` seconds for another holder. Without
        ``create``, a missing state directory is not created (there is nothing to protect).
        """
        if self._lock_depth or (not create and not self.paths.root.is_dir()):
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.paths.root.mkdir(parents=True, exist_ok=True)
        timeout = timeout if timeout is not None else 2 * self.settings.health_timeout_s + 60
        fd = os.open(self.paths.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StackError(f"another up/down/destroy holds {self.paths.root / '.lock'}") from None
                    time.sleep(0.5)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------------------------
    # Accessors
    # ------------------------------------------------------------------------------------------------------
    def credentials(self) -> catalog.Credentials:
        """The stack's credentials (created by the first ``up``)."""
        if self._creds is None:
            if not self.paths.credentials.exists():
                raise StackError(f"no credentials at {self.paths.credentials}: run `up` first")
            self._creds, _ = load_or_create_credentials(self.paths.credentials)
        return self._creds

    def services(self) -> list[str]:
        """Enabled services in start order."""
        return self.settings.enabled_services()

    def url(self, service: str, path: str = "") -> str:
        """``http://127.0.0.1:<port><path>`` of a service."""
        return self.topology.url(service, path)

    def postgres_url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of one of the platform's databases (contains the password)."""
        return catalog.postgres_url(self.topology, self.credentials(), database, driver)

    def client_env(self) -> dict[str, str]:
        """Environment for clients of the stack (ML library, notebooks, benchmarks): S3, MLflow, Optuna.

        As the training pipeline: its S3 keys, its database role, its MLflow user.
        """
        return catalog.ml_env(self.topology, self.credentials())

    def mlflow_login(self) -> tuple[str, str]:
        """The operator's MLflow login (the basic-auth admin): for tools and tests that inspect the registry."""
        return catalog.MLFLOW_ADMIN_USER, self.credentials().mlflow_admin_password

    def log_path(self, program: str) -> Path:
        """Log file of a supervised program."""
        return self.paths.log(program)

    def supervisor(self) -> SupervisorClient:
        """XML-RPC client of this stack's supervisord."""
        return SupervisorClient(self.paths.supervisor_socket)

    def is_running(self) -> bool:
        """Whether this stack's supervisord is alive and answering."""
        return read_pid(self.paths) is not None and self.supervisor().ping()

    def supervisord_pid(self) -> int | None:
        """PID of this stack's supervisord, or None."""
        return read_pid(self.paths)

    # ------------------------------------------------------------------------------------------------------
    # Preparation
    # ------------------------------------------------------------------------------------------------------
    def _announce_localstack(self) -> None:
        """Say why LocalStack is off when 'auto' left it off (the stack carries on without it)."""
        off = self.settings.localstack_off_reason()
        if off:
            self._out(
                f"LocalStack (the API as a Lambda) is off: {off}. The stack runs without it "
                "(MLOPS_STACK_ENABLE_LOCALSTACK=0 silences this, =1 requires it)."
            )

    def _prepare(self) -> tuple[BuildContext, dict[str, LocalService]]:
        s, p = self.settings, self.paths
        p.create()
        if not p.credentials.exists() and (p.postgres_data / "PG_VERSION").exists():
            raise StackError(
                f"{p.credentials} is missing but Postgres data exists in {p.postgres_data}: its password is in "
                f"the lost file. Restore {p.credentials.name} or `destroy` the stack."
            )
        creds, created = load_or_create_credentials(p.credentials)
        self._creds = creds
        if created:
            self._out(f"generated credentials in {p.credentials} (mode 0600)")
        services = s.enabled_services()
        self._announce_localstack()
        if catalog.AIRFLOW_API in services and not s.dags_folder.is_dir():
            raise StackError(f"DAG folder {s.dags_folder} does not exist (MLOPS_STACK_DAGS_FOLDER)")

        binaries, pg_user = postgres.ensure_cluster(
            p.postgres,
            p.postgres_data,
            creds.postgres_password,
            p.log("postgres-initdb"),
            self._out,
            bin_dir=s.postgres_bin_dir,
            configured_user=s.postgres_os_user,
        )

        # Derived secret files (mode 0600), rewritten from credentials.json on every up.
        airflow_paths = p.airflow_paths(s.dags_folder)
        write_private(Path(airflow_paths.passwords_file), catalog.airflow_passwords_json(creds))
        airflow_cfg = p.airflow_home / "airflow.cfg"
        if not airflow_cfg.exists():  # else Airflow writes one, with generated secrets, on first start
            airflow_cfg.write_text("# Airflow is configured through environment variables (infra/local).\n")
        if s.s3_backend == "seaweedfs":
            write_private(p.s3_identities, access.seaweed_identities_json(creds))
        auth_db = catalog.postgres_url(self.topology, creds, "mlflow_auth")
        write_private(p.mlflow_auth_config, catalog.mlflow_auth_ini(auth_db))

        ctx = BuildContext(s, p, creds, self.topology, binaries, pg_user)
        t = time.monotonic()
        built = build_services(ctx, services)
        if catalog.LOCALSTACK in services and time.monotonic() - t > 3:
            self._out(f"LocalStack's environments ready in {time.monotonic() - t:.0f} s ({s.localstack_envs_dir})")
        return ctx, built

    # ------------------------------------------------------------------------------------------------------
    # up
    # ------------------------------------------------------------------------------------------------------
    def up(self) -> dict[str, float]:
        """Start the stack (see :meth:`_up`); serialised with other up/down/destroy calls on this state dir."""
        with self.locked():
            return self._up()

    def _up(self) -> dict[str, float]:
        """Start every enabled service not yet running, in dependency order.

        Each service starts once the services it needs are healthy, and counts as up once its own catalog
        health check passes. Returns the seconds from the call to each service's health (and ``total``).

        Harmless when already running (only re-checks health); restarts the stack when its configuration
        changed. Raises :class:`StackError` naming the service, the check and the log on failure.
        """
        t0 = time.monotonic()
        if not self.is_running():  # before anything is created or initialised: a taken port fails in a second
            self._clear_leftovers()
            self._check_ports_free(self.settings.enabled_services())
        _ctx, services = self._prepare()
        programs = all_programs(services)
        conf, secret_env = render_config(programs, self.paths, self.credentials().values())

        if self.is_running():
            current = self.paths.supervisord_conf.read_text() if self.paths.supervisord_conf.exists() else ""
            if current != conf:
                self._out("configuration changed: restarting the stack (data is kept)")
                self.down()
        if not self.is_running():
            self._clear_leftovers()
            self._check_ports_free(list(services))
            write_secret_files(self.paths, secret_env)
            self.paths.supervisord_conf.write_text(conf)
            launch(self.paths, supervisord_env(self.paths))
            self._out(f"supervisord started ({self.paths.supervisord_conf})")

        if catalog.LOCALSTACK in services:
            from infra.aws_lambda.local_deployment import LambdaDeployment

            # The zip is checked (and built if stale) right away, while the other services start.
            self._lambda_job = LambdaDeployment(
                self.topology, self.credentials(), self._out, log_path=self.paths.log(catalog.LOCALSTACK)
            ).start()
        try:
            timings = self._start_all(services, t0)
        finally:
            if self._lambda_job is not None:
                self._lambda_job.cancel()
                self._lambda_job = None
        timings["total"] = time.monotonic() - t0
        self._out(f"all {len(services)} services healthy in {timings['total']:.1f} s")
        return timings

    def _clear_leftovers(self) -> None:
        """End orphaned processes of a previous run and remove its stale pid files (the stack is not running)."""
        orphans = stack_processes(self.paths)  # before clear_stale: it may use the stale pidfile
        if orphans:
            self._out(f"terminating {len(orphans)} orphaned process(es) of a previous run")
            killed = terminate(orphans)
            if killed:
                self._out(f"had to SIGKILL {killed}")
        for f in clear_stale(self.paths):
            self._out(f"removed stale {f}")
        if postgres.clear_stale_pidfile(self.paths.postgres_data):
            self._out("removed a stale postmaster.pid")

    def _check_ports_free(self, services: list[str]) -> None:
        """Fail before starting anything if a port of ours is taken (e.g. by another stack on the defaults).

        Otherwise another server could even pass our health check in place of the process we start.
        """
        busy = {owner: port for owner, port in self.settings.ports_of(services).items() if not port_is_free(port)}
        if busy:
            lines = [f"  {owner}: {port} {listener_of(port)}" for owner, port in busy.items()]
            raise StackError(
                "port(s) already in use, the stack cannot start:\n"
                + "\n".join(lines)
                + "\nstop what uses them, or move this stack: MLOPS_STACK_PORT_OFFSET (e.g. 100) moves every "
                "port and the state directory; MLOPS_STACK_<NAME>_PORT sets one port"
            )

    def _hook_context(self, name: str) -> HookContext:
        """What the service hooks of ``name`` may use (see :mod:`infra.local.service_hooks`)."""
        return HookContext(name, self.topology, self.credentials(), self._out, self._lambda_job, self.paths.log(name))

    def _start_all(self, services: dict[str, LocalService], t0: float) -> dict[str, float]:
        """Start ``services`` in dependency order, each gated on its health (:mod:`infra.local.startup`)."""
        timeout = self.settings.health_timeout_s
        return StartupSequence(services, self.supervisor(), timeout, self._hook_context, self.paths.log, self._out).run(
            t0
        )

    # ------------------------------------------------------------------------------------------------------
    # down / destroy
    # ------------------------------------------------------------------------------------------------------
    def down(self) -> float:
        """Stop the stack, keep the data (see :meth:`_down`); returns the seconds it took."""
        with self.locked(create=False):
            return self._down()

    def _down(self) -> float:
        """Stop every process and supervisord; keep all data. Returns the seconds it took.

        Programs stop in reverse dependency order (their stop signal, then SIGKILL after their bound); then
        supervisord exits and any process of this stack still alive (found by its marker) is terminated.
        """
        t0 = time.monotonic()
        pid = read_pid(self.paths)
        client = self.supervisor()
        if pid is not None and client.ping():
            stop_in_waves(client, self.settings.stop_timeout_s, self._out)
            client.shutdown()
            try:
                psutil.Process(pid).wait(timeout=30)
            except psutil.TimeoutExpired:
                self._out(f"supervisord {pid} did not exit: killing it")
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        elif pid is not None:  # alive but not answering
            self._out(f"supervisord {pid} does not answer: terminating it")
            terminate([psutil.Process(pid)])
        orphans = stack_processes(self.paths, session=pid)
        if orphans:
            names = ", ".join(f"{p.pid}:{p.name()}" for p in orphans if p.is_running())
            self._out(f"terminating {len(orphans)} process(es) left behind: {names}")
            killed = terminate(orphans)
            if killed:
                self._out(f"had to SIGKILL {killed}")
        clear_stale(self.paths)
        remove_seaweed_sockets(self.settings)
        elapsed = time.monotonic() - t0
        self._out(f"stopped in {elapsed:.1f} s")
        return elapsed

    def destroy(self) -> None:
        """Stop the stack and delete its state directory (see :meth:`_destroy`)."""
        with self.locked(create=False):
            self._destroy()

    def _destroy(self) -> None:
        """Stop the stack and delete its state directory (all data, logs and credentials)."""
        self.down()
        root = self.paths.root
        if root.exists():
            if not self.paths.is_stack_dir() and any(p.name != ".lock" for p in root.iterdir()):
                raise StackError(f"refusing to delete {root}: it is not a stack state directory ({self.paths.marker})")
            shutil.rmtree(root)
            self._out(f"deleted {root}")
        self._creds = None

    # ------------------------------------------------------------------------------------------------------
    # status
    # ------------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Health of every enabled service (one bounded check each), as plain data (JSON-serialisable).

        Each service's verdict comes from :meth:`_service_health`, the one health decision that waits
        (tests, ``up``) share through :meth:`service_status`.
        """
        running = self.is_running()
        info = self.supervisor().all_info() if running else {}
        creds = self.credentials() if self.paths.credentials.exists() else None
        airflow_doc: dict[str, Any] = {}
        services = {name: self._service_health(name, info.get(name), creds, airflow_doc) for name in self.services()}
        result: dict[str, Any] = {
            "state_dir": str(self.paths.root),
            "supervisord": {"running": running, "pid": read_pid(self.paths)},
            "healthy": bool(services) and all(e["healthy"] for e in services.values()),
            "services": services,
            "ports": self.settings.ports_of(self.services()),  # every port the stack listens on, derived ones too
        }
        if services.get(catalog.AIRFLOW_API, {}).get("healthy"):
            result["dag_runs"] = self._dag_run_health()
            result["healthy"] = result["healthy"] and not result["dag_runs"]["stuck"]
        return result

    def _dag_run_health(self) -> dict[str, Any]:
        """Running DAG runs, and those without progress for ``dag_run_stuck_after_s`` (``stuck``)."""
        return dag_run_health(lambda: self.airflow(timeout=10.0), self.settings.dag_run_stuck_after_s)

    def service_status(self, name: str) -> dict[str, Any]:
        """The :meth:`status` entry of one service (same checks, same verdict)."""
        info = self.supervisor().info(name) if self.is_running() else None
        creds = self.credentials() if self.paths.credentials.exists() else None
        return self._service_health(name, info, creds, {})

    def _service_health(
        self,
        name: str,
        pi: ProcessInfo | None,
        creds: catalog.Credentials | None,
        airflow_doc: dict[str, Any],
    ) -> dict[str, Any]:
        """State, check and verdict of one service (:func:`infra.local.service_status.service_health`)."""
        return service_health(name, pi, creds, self.topology, self.paths.log(name), airflow_doc)

    def lambda_endpoints(self) -> dict[str, dict[str, Any]]:
        """Where the API deployed as a Lambda answers: ``{"function_url": {...}, "rest_v1": {...}}``, or ``{}``.

        Each with ``url``, ``base_url`` and ``headers``, ``predict_url`` and a ``curl`` command (see
        :func:`infra.aws_lambda.local_service.client_endpoints`); ``{}`` unless the function is deployed.
        """
        if catalog.LOCALSTACK not in self.services() or not self.is_running():
            return {}
        from infra.aws_lambda import local_service

        eps = local_service.endpoints(self.topology)
        return local_service.client_endpoints(eps) if eps is not None else {}

    def redeploy_lambda(self) -> str:
        """Deploy the API's Lambda into the running LocalStack again if it is missing; returns what happened.

        LocalStack forgets every resource when it restarts; its ready hook (see
        :func:`infra.aws_lambda.local_service.write_ready_hook`) runs this after supervisord restarted it.
        While ``up``, ``down`` or ``destroy`` holds the stack lock it does nothing: ``up`` deploys the
        function itself. It deploys the zip ``up`` built last (never rebuilds it) with the stack's
        configuration, then checks that the function answers. Raises :class:`StackError` on failure.
        """
        if catalog.LOCALSTACK not in self.services():
            return "LocalStack is not part of this stack"
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.locked(timeout=0, create=False))
            except StackError as e:
                return f"nothing to do now: {e} (up deploys the Lambda itself)"
            from infra.aws_lambda import local_deployment

            try:
                return local_deployment.redeploy(
                    self.topology, self.credentials(), self.paths.log(catalog.LOCALSTACK), self._out
                )
            except RuntimeError as e:
                raise StackError(str(e)) from e

    def memory(self) -> dict[str, Any]:
        """Proportional set size (PSS) of the stack's processes, in MB: total and by program."""
        pid = read_pid(self.paths)
        return stack_memory(pid, self.supervisor() if pid is not None else None)

    # ------------------------------------------------------------------------------------------------------
    # Airflow helpers
    # ------------------------------------------------------------------------------------------------------
    def airflow(self, timeout: float = 10.0) -> AirflowClient:
        """An authenticated Airflow REST client (admin user)."""
        return AirflowClient(
            self.topology.url(catalog.AIRFLOW_API),
            catalog.AIRFLOW_ADMIN_USER,
            self.credentials().airflow_admin_password,
            timeout=timeout,
        )

    def airflow_token(self) -> str:
        """A JWT for Airflow's REST API (``Authorization: Bearer <token>``)."""
        with self.airflow() as af:
            return af.token()

    def trigger_dag(self, dag_id: str, conf: dict[str, Any] | None = None, wait_for_dag_s: float = 120.0) -> str:
        """Trigger ``dag_id`` now (waiting until it is parsed, unpausing it if needed); returns the run id."""
        with self.airflow() as af:
            return af.trigger_dag(dag_id, conf, wait_for_dag_s)

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        on_progress: Callable[[DagRunProgress], None] | None = None,
        timeout: float = 900.0,
        poll_s: float = 1.0,
    ) -> str:
        """Wait for a run to end, reporting run and task-instance states live; returns the final state."""
        with self.airflow() as af:
            return af.wait_for_dag_run(dag_id, run_id, timeout=timeout, poll_s=poll_s, on_progress=on_progress)


__all__ = ["Program", "Stack", "StackError", "StackSettings", "ensure_buckets", "ensure_databases", "tail"]
