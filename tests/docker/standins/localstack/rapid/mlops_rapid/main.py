"""Stand-in for LocalStack's Lambda init: the entrypoint of every function container (``/var/rapid/init``).

The real init is a Go build of github.com/localstack/lambda-runtime-init (``cmd/localstack/main.go``, release
``v0.1.41-pre`` for localstack-core 2026.3.0 / image 4.14.0). This module does what that init does, in the
same order, and speaks the same two protocols through the project's own stdlib-only implementations, copied
in at image build time from ``infra/aws_lambda/localstack_plugin/mlops_localstack_lambda/``:

* ``interop.LocalStackInterop`` -- LocalStack's side: ``POST /invoke`` on ``LOCALSTACK_INTEROP_PORT`` (9563),
  callbacks ``/status/<id>/ready|error`` and ``/invocations/<id>/logs|response|error`` under
  ``LOCALSTACK_RUNTIME_ENDPOINT``;
* ``runtime_api.RuntimeAPIServer`` (through ``LambdaProcess``) -- the runtime's side: the Lambda Runtime API on
  ``127.0.0.1:9001`` (``AWS_LAMBDA_RUNTIME_API``).

Steps (as ``main.go``): read the ``LOCALSTACK_*`` options and unset them (plus ``HOSTNAME`` and ``HOME``),
apply ``LOCALSTACK_CHMOD_PATHS``, find the bootstrap (``/var/task/bootstrap``, ``/opt/bootstrap``,
``/var/runtime/bootstrap``, or the command line), create the sandbox user ``sbx_user1051`` (uid 993, gid 990)
and drop root privileges, start the Runtime API, start the bootstrap in ``/var/task``, send ``ready`` (or
``error``) to LocalStack when the runtime's init ends, then serve invocations until stopped.

Not emulated: extensions, the X-Ray daemon, hot reloading (``LOCALSTACK_HOT_RELOADING_PATHS``: a bind-mounted
code directory is used as is, but changes do not reset the runtime), ``LOCALSTACK_CODE_ARCHIVES``, the payload
size limit. The runtime's output goes to a log file (sent to LocalStack with each invocation, as the real init
does) and is echoed to the container's stdout.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # /var/rapid (python -I omits the script's dir)

from mlops_rapid.interop import LocalStackInterop
from mlops_rapid.lambda_process import LambdaProcess

LOG = logging.getLogger("init-standin")

RUNTIME_API_HOST, RUNTIME_API_PORT = "127.0.0.1", 9001  # fixed in main.go
SANDBOX_UID, SANDBOX_GID = 993, 990  # main.go: AddUser(lsOpts.User, 993, 990)
TASK_ROOT = "/var/task"
BOOTSTRAP_CANDIDATES = ("/opt/bootstrap", "/var/runtime/bootstrap")  # after /var/task/bootstrap (awsutil.go)
LOG_DIR = Path("/var/rapid/log")

# main.go UnsetLsEnvs(): LocalStack's variables, the Docker container id and HOME are not for the function.
UNSET = (
    "LOCALSTACK_RUNTIME_ENDPOINT",
    "LOCALSTACK_RUNTIME_ID",
    "LOCALSTACK_INTEROP_PORT",
    "LOCALSTACK_RUNTIME_TRACING_PORT",
    "LOCALSTACK_USER",
    "LOCALSTACK_CODE_ARCHIVES",
    "LOCALSTACK_HOT_RELOADING_PATHS",
    "LOCALSTACK_ENABLE_XRAY_TELEMETRY",
    "LOCALSTACK_INIT_LOG_LEVEL",
    "LOCALSTACK_POST_INVOKE_WAIT_MS",
    "LOCALSTACK_FUNCTION_ACCOUNT_ID",
    "LOCALSTACK_MAX_PAYLOAD_SIZE",
    "LOCALSTACK_CHMOD_PATHS",
    "HOSTNAME",
    "HOME",
)
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def required(name: str) -> str:
    """An environment variable the init cannot start without (main.go ``GetEnvOrDie``)."""
    value = os.environ.get(name)
    if value is None:
        sys.exit(f"init stand-in: could not find environment variable for: {name}")
    return value


def adapt_permissions(chmod_paths: str) -> None:
    """``LOCALSTACK_CHMOD_PATHS``: ``[{"path": "/tmp", "mode": "0700"}, ...]``, applied recursively."""
    for item in json.loads(chmod_paths or "[]"):
        raw = str(item["mode"])  # Go: strconv.ParseInt(mode, 0, 32): "0700" is octal, "0o700" too, "448" decimal
        mode = int(raw, 8) if re.fullmatch(r"0[0-7]+", raw) else int(raw, 0)
        for root, dirs, files in os.walk(item["path"]):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                try:
                    os.chmod(name, mode, follow_symlinks=False)
                except (NotImplementedError, OSError) as e:
                    LOG.warning("could not change the mode of %s: %s", name, e)
        if not os.path.isdir(item["path"]) and os.path.exists(item["path"]):
            os.chmod(item["path"], mode)


def bootstrap_command(argv: list[str]) -> tuple[list[str], str, str]:
    """The runtime's command line, working directory and handler (awsutil.go ``getBootstrap``)."""
    if len(argv) <= 1:
        cwd, handler = TASK_ROOT, ""
        command = [f"{TASK_ROOT}/bootstrap"]
        if not os.path.isfile(command[0]):
            command = next(([c] for c in BOOTSTRAP_CANDIDATES if os.path.isfile(c)), command)
    else:
        command, cwd = argv[1:], os.getcwd()
        handler = argv[-1] if len(argv) > 2 else ""
    if not os.access(command[0], os.X_OK):
        try:
            os.chmod(command[0], 0o755)
        except OSError as e:
            LOG.warning("could not make the bootstrap %s executable: %s", command[0], e)
    return command, cwd, handler


def _append_line(path: str, entry: str) -> None:
    try:
        text = Path(path).read_text()
    except OSError as e:
        LOG.warning("could not read %s: %s", path, e)
        return
    if entry not in text:
        with open(path, "a") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + entry + "\n")


def drop_privileges(user: str, paths: list[Path]) -> None:
    """Create the sandbox user (user.go ``AddUser``), hand it /tmp and ``paths``, switch to it for good."""
    _append_line("/etc/passwd", f"{user}:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/{user}:/sbin/nologin")
    _append_line("/etc/shadow", f"{user}:*:18313:0:99999:7:::")
    entry = pwd.getpwnam(user)
    for path in [Path("/tmp"), *paths]:
        try:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        except OSError as e:
            LOG.warning("could not change the owner of %s: %s", path, e)
    try:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as e:
        LOG.warning("could not drop root privileges: %s", e)


class BootstrapProcess(LambdaProcess):
    """``LambdaProcess`` that starts the image's bootstrap (as the real init does), not ``python -m awslambdaric``.

    The runtime gets the container's environment (LocalStack's function variables, the image's ENV) plus
    ``AWS_LAMBDA_RUNTIME_API``. Everything else -- Runtime API, timeouts, restarts after a timeout or an
    exit, log capture -- is ``runtime_api.LambdaProcess``.
    """

    def __init__(self, command: list[str], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.command = command

    def _spawn(self) -> None:  # replaces LambdaProcess._spawn (same contract: set _proc, watch it)
        env = {**self.env, "AWS_LAMBDA_RUNTIME_API": self.server.address}
        if self.handler:
            env["_HANDLER"] = self.handler
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self.command,
                cwd=self.code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._proc = proc
        threading.Thread(target=self._watch, args=(proc,), name=f"runtime-{proc.pid}", daemon=True).start()

    def take_logs(self) -> str:
        """What the runtime printed since the last invocation; also echoed to the container's stdout."""
        chunk = super().take_logs()
        if chunk:
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return chunk


def main(argv: list[str]) -> int:
    endpoint = required("LOCALSTACK_RUNTIME_ENDPOINT")
    runtime_id = required("LOCALSTACK_RUNTIME_ID")
    interop_port = int(os.environ.get("LOCALSTACK_INTEROP_PORT") or 9563)
    user = os.environ.get("LOCALSTACK_USER", "sbx_user1051")
    level = os.environ.get("LOCALSTACK_INIT_LOG_LEVEL", "warn")
    chmod_paths = os.environ.get("LOCALSTACK_CHMOD_PATHS", "[]")
    account = os.environ.get("LOCALSTACK_FUNCTION_ACCOUNT_ID", "000000000000")
    unsupported = [v for v in ("LOCALSTACK_CODE_ARCHIVES", "LOCALSTACK_HOT_RELOADING_PATHS") if os.environ.get(v)]
    timeout = float(required("AWS_LAMBDA_FUNCTION_TIMEOUT"))
    version = required("AWS_LAMBDA_FUNCTION_VERSION")
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128)
    for name in UNSET:
        os.environ.pop(name, None)

    logging.basicConfig(
        stream=sys.stderr, level=LOG_LEVELS.get(level, logging.WARNING), format="init-standin %(levelname)s %(message)s"
    )
    for name in unsupported:
        LOG.warning("%s is not supported by the init stand-in (ignored)", name)
    try:
        adapt_permissions(chmod_paths)
    except (ValueError, KeyError, TypeError) as e:
        LOG.warning("could not change file mode of code directories: %s", e)

    command, cwd, handler = bootstrap_command(argv)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "runtime.log"
    log_path.touch()
    if os.getuid() == 0 and user not in ("", "root"):
        drop_privileges(user, [LOG_DIR, log_path])

    function: BootstrapProcess | None = None

    def on_init_error(payload: bytes, error_type: str | None) -> None:
        if function is not None:
            sys.stdout.write(function.logs())
            sys.stdout.flush()
        interop.report_init_error(payload, error_type)

    interop = LocalStackInterop(
        endpoint, runtime_id, function_version=version, memory_size=memory, host="0.0.0.0", port=interop_port
    )
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    region = os.environ.get("AWS_REGION", "us-east-1")
    function = BootstrapProcess(
        command,
        cwd,
        os.environ.get("_HANDLER") or handler,
        env=dict(os.environ),
        timeout=timeout,
        # Only re-inits (after a timeout or a runtime exit) wait on this; LocalStack times the first init itself.
        init_timeout=max(timeout, 20.0),
        log_path=log_path,
        function_arn=f"arn:aws:lambda:{region}:{account}:function:{name}",
        on_ready=interop.report_ready,
        on_init_error=on_init_error,
        host=RUNTIME_API_HOST,
        port=RUNTIME_API_PORT,
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)  # PID 1: without handlers, SIGTERM would be ignored
    signal.signal(signal.SIGINT, on_signal)
    interop.start(function)
    function.start()
    LOG.info("started %s (cwd %s) for runtime %s", command, cwd, runtime_id)
    stop.wait()
    function.stop()
    interop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
