"""``LocalProcessRuntimeExecutor``: LocalStack's ``RuntimeExecutor`` with local processes instead of containers.

How LocalStack 2026.3.0 runs a Lambda execution environment, and what this executor replaces
--------------------------------------------------------------------------------------------
``ExecutionEnvironment`` (``localstack.services.lambda_.invocation.execution_environment``) creates one
executor per environment: ``executor_class(id, function_version)``, then ``start(env_vars)``,
``invoke(payload)`` for each invocation, ``stop()``; ``get_logs()`` for diagnostics. The version manager calls
the class methods ``prepare_version`` / ``cleanup_version`` when a function version is created / deleted,
and the provider calls ``validate_environment`` once at start-up.

The Docker executor (``docker_runtime_executor.DockerRuntimeExecutor``) starts a container from the AWS
runtime image with LocalStack's init as entrypoint, and talks to it through an ``ExecutorEndpoint``:
``POST /invoke`` into the container, ``/status/...`` and ``/invocations/...`` callbacks back into the
gateway (see :mod:`.interop`). This executor keeps the ``ExecutorEndpoint`` and the protocol, and replaces
the container with:

* an :class:`~.interop.LocalStackInterop` (the init's LocalStack-facing half) and a
  :class:`~.runtime_api.RuntimeAPIServer` (the init's runtime-facing half), both threads of LocalStack's
  process on loopback ports (free ones of ``MLOPS_LAMBDA_PORTS`` when set, so that a stack knows every port
  it listens on);
* one process, ``<python> -m awslambdaric <handler>``, in the function's unzipped code directory, with the
  function's environment variables (``AWS_ENDPOINT_URL`` etc. point at the gateway), ``TMPDIR`` in a
  private temporary directory, and ``AWS_LAMBDA_RUNTIME_API`` pointing at the server.

The interpreter comes from ``MLOPS_LAMBDA_PYTHONS`` (runtime -> interpreter with awslambdaric), so that a
``python3.12`` function with compiled cp312 dependencies runs on a 3.12 interpreter while LocalStack itself
needs 3.13. Only zip-packaged ``python3.x`` functions are supported; layers, image functions, architectures
and the Amazon Linux file system are not emulated (that is what the Docker executor gives).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import ExecutorEndpoint
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from . import PORTS_ENV, PYTHONS_ENV, check_localstack_version, lambda_ports, lambda_pythons
from .interop import LocalStackInterop
from .lambda_process import LambdaProcess
from .runtime_api import bind_first_free

check_localstack_version()

LOG = logging.getLogger(__name__)

_checked_pythons: dict[tuple[str, str], str | None] = {}


def _python_problem(python: str, runtime: str) -> str | None:
    """Why ``python`` cannot run ``runtime`` functions (None if it can); cached per interpreter."""
    key = (python, runtime)
    if key not in _checked_pythons:
        want = runtime.removeprefix("python")
        try:
            out = subprocess.run(
                [python, "-c", "import sys, awslambdaric; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode != 0:
                problem = f"{python} cannot import awslambdaric: {out.stderr.strip()[-500:]}"
            elif out.stdout.strip() != want:
                problem = f"{python} is Python {out.stdout.strip()}, the function's runtime is {runtime}"
            else:
                problem = None
        except (OSError, subprocess.TimeoutExpired) as e:
            problem = f"{python} does not run: {e}"
        _checked_pythons[key] = problem
    return _checked_pythons[key]


def python_for(function_version: FunctionVersion) -> str:
    """The interpreter that runs ``function_version``; LambdaRuntimeException with the reason if there is none."""
    cfg = function_version.config
    if cfg.package_type != PackageType.Zip:
        raise LambdaRuntimeException("the local-process executor runs zip-packaged functions only (no images)")
    runtime = str(cfg.runtime or "")
    if not runtime.startswith("python"):
        raise LambdaRuntimeException(f"the local-process executor runs python3.x functions only, not {runtime!r}")
    python = lambda_pythons().get(runtime)
    if not python:
        raise LambdaRuntimeException(
            f"no interpreter for runtime {runtime}: set {PYTHONS_ENV} in LocalStack's environment, "
            f'e.g. {{"{runtime}": "/path/to/venv/bin/python"}} (a venv with awslambdaric)'
        )
    problem = _python_problem(python, runtime)
    if problem:
        raise LambdaRuntimeException(f"cannot run {runtime} functions: {problem}")
    return python


def _gateway_host() -> str:
    host = config.GATEWAY_LISTEN[0].host
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    """One Lambda execution environment as a local ``awslambdaric`` process (see the module docstring)."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(self.id)
        self.function: LambdaProcess | None = None
        self.interop: LocalStackInterop | None = None
        self.work_dir: Path | None = None

    def start(self, env_vars: dict[str, str]) -> None:
        """Start the environment; returns when the runtime finished its init (raises if it failed)."""
        self.executor_endpoint.start()
        cfg = self.function_version.config
        python = python_for(self.function_version)
        base = Path(tempfile.gettempdir()) / "lambda-environments"
        base.mkdir(parents=True, exist_ok=True)
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"{self.function_version.id.function_name}-{self.id}-", dir=base))
        (self.work_dir / "tmp").mkdir()
        if cfg.layers:
            LOG.warning("%s has layers: the local-process executor ignores them", self.function_version.qualified_arn)
        env = dict(env_vars)
        env.update(
            {
                "TMPDIR": str(self.work_dir / "tmp"),  # /tmp of the sandbox
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{cfg.runtime}",  # what the AWS runtime's bootstrap sets
                "LAMBDA_RUNTIME_DIR": str(Path(python).parent.parent),
            }
        )
        ports = lambda_ports()  # the two servers of this environment listen on ports of this range, if set
        try:
            interop = self.interop = bind_first_free(
                lambda port: LocalStackInterop(
                    self.get_runtime_endpoint(),
                    self.id,
                    function_version=self.function_version.id.qualifier,
                    memory_size=int(cfg.memory_size),
                    port=port,
                ),
                ports,
            )
            self.function = bind_first_free(
                lambda port: LambdaProcess(
                    cfg.code.get_unzipped_code_location(),
                    cfg.handler,
                    python=python,
                    env=env,
                    timeout=float(cfg.timeout),
                    init_timeout=float(config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT),
                    log_path=self.work_dir / "runtime.log",
                    function_arn=self.function_version.qualified_arn,
                    on_ready=interop.report_ready,
                    on_init_error=interop.report_init_error,
                    port=port,
                ),
                ports,
            )
        except OSError as e:
            raise LambdaRuntimeException(
                f"cannot start an execution environment: {e} ({PORTS_ENV}={ports.start}-{ports.stop - 1}: "
                "too many environments at once)"
                if ports
                else f"cannot start an execution environment: {e}"
            ) from e
        self.interop.start(self.function)
        self.function.start()
        self.executor_endpoint.container_address = self.get_address()
        self.executor_endpoint.container_port = self.interop.port
        LOG.debug("Started local Lambda runtime pid %s for %s", self.function.pid, self.function_version.qualified_arn)
        self.executor_endpoint.wait_for_startup()

    def stop(self) -> None:
        """Stop the runtime process and the servers; remove the environment's temporary directory."""
        if self.function is not None:
            self.function.stop()
        if self.interop is not None:
            self.interop.close()
        try:
            self.executor_endpoint.shutdown()
        except Exception as e:
            LOG.debug("Error while stopping executor endpoint of %s: %s", self.function_version.qualified_arn, e)
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def get_address(self) -> str:
        """The environment listens on loopback."""
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        """LocalStack's gateway as the local process reaches it."""
        return _gateway_host()

    def get_runtime_endpoint(self) -> str:
        """Base URL of this environment's callbacks into LocalStack (``ExecutorEndpoint``'s routes)."""
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{self.get_endpoint_from_executor()}:{port}{self.executor_endpoint.get_endpoint_prefix()}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        """Send one invocation through the ExecutorEndpoint (``POST /invoke``), as for a container."""
        return self.executor_endpoint.invoke(payload)

    def get_logs(self) -> str:
        """All output of the environment's runtime processes."""
        return self.function.logs() if self.function is not None else "Environment was not started"

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Check that the function can run here and unzip its code (once per version)."""
        python_for(function_version)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to clean: the unzipped code belongs to LocalStack's code store."""

    @classmethod
    def validate_environment(cls) -> bool:
        """Log the runtime mapping at start-up; False (with a warning) if it is missing or malformed."""
        try:
            mapping = lambda_pythons()
        except ValueError as e:
            LOG.warning("local-process Lambda executor: %s", e)
            return False
        if not mapping:
            LOG.warning("local-process Lambda executor: %s is not set: no function can run", PYTHONS_ENV)
            return False
        try:
            ports = lambda_ports()
        except ValueError as e:
            LOG.warning("local-process Lambda executor: %s", e)
            return False
        where = f"ports {ports.start}-{ports.stop - 1}" if ports else "any free port"
        LOG.info("local-process Lambda executor (no Docker); runtimes: %s; environments listen on %s", mapping, where)
        return True
