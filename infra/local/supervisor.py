"""Supervision by ``supervisord``: config rendering, the daemon's life cycle and its XML-RPC API.

Secrets never reach the config file: :func:`render_config` moves every environment variable whose value
contains a credential into the environment of the supervisord process itself (children inherit it), and
keeps only non-secret variables in the per-program ``environment=`` lines. Each program then sheds the
secrets it does not use: its command runs under ``env -u NAME...`` (:func:`scoped_command`), so e.g. the
prediction API never sees the Postgres password and Airflow never sees the API's admin key.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shlex
import socket
import subprocess
import time
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from infra.local.launch import end, previous_group
from infra.local.layout import StatePaths, write_private
from infra.local.programs import VENV_BIN, Program

#: Environment variable naming the state directory in every supervised process (orphan detection).
STACK_MARKER_ENV = "MLOPS_STACK_INSTANCE"
#: Variables passed from the caller's environment to supervisord (and so to every service); nothing else is.
PASSTHROUGH_ENV = (
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONDONTWRITEBYTECODE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
#: supervisor's process states that mean "not running and not going to run by itself".
STOPPED_STATES = {"STOPPED", "EXITED", "FATAL"}


class ConfigError(ValueError):
    """A program cannot be rendered safely (e.g. a secret on its command line)."""


# ---------------------------------------------------------------------------------------------------------
# Rendering (pure)
# ---------------------------------------------------------------------------------------------------------
def _is_secret(value: str, secrets: Iterable[str]) -> bool:
    return any(s and s in value for s in secrets)


def _quote_env_value(key: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ConfigError(f"environment value of {key} contains a newline")
    if value and (value[0] in "'\"" or value[-1] in "'\""):
        # supervisor strips quote characters from both ends of every value
        raise ConfigError(f"environment value of {key} starts or ends with a quote character")
    value = value.replace("%", "%%")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ConfigError(f"environment value of {key} contains both quote characters")


def _env_line(env: dict[str, str]) -> str:
    return ",".join(f"{k}={_quote_env_value(k, v)}" for k, v in sorted(env.items()))


def split_env(
    programs: list[Program], secrets: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Split each program's environment into its secret variables and the rest.

    Returns (secret variables per program, non-secret variables per program). The secret ones go to the
    program's private file (``StatePaths.secrets_file``), which its launcher loads: supervisord and the other
    programs never hold them, and two programs may use different secrets under the same name (each
    service has S3 keys, a database login and an MLflow login of its own).
    """
    secret: dict[str, dict[str, str]] = {}
    public: dict[str, dict[str, str]] = {}
    for prog in programs:
        secret[prog.name], public[prog.name] = {}, {}
        for key, value in prog.env.items():
            (secret if _is_secret(value, secrets) else public)[prog.name][key] = value
    return secret, public


def _program_section(
    prog: Program, priority: int, paths: StatePaths, env: dict[str, str], secrets: list[str]
) -> list[str]:
    """The ``[program:...]`` section of one program (its public environment only)."""
    for arg in prog.command:
        if _is_secret(arg, secrets):
            raise ConfigError(f"program {prog.name}: a secret would appear on its command line")
    command = shlex.join(prog.command).replace("%", "%%")
    return [
        f"[program:{prog.name}]",
        f"command={command}",
        f"directory={prog.directory or paths.root}",
        *([f"user={prog.user}"] if prog.user else []),
        *([f"environment={_env_line(env)}"] if env else []),
        f"priority={priority}",
        "autostart=false",
        f"autorestart={'false' if prog.oneshot else 'true'}",
        f"startsecs={0 if prog.oneshot else prog.startsecs}",
        f"startretries={min(prog.startretries, ONESHOT_START_RETRIES) if prog.oneshot else prog.startretries}",
        "exitcodes=0",
        f"stopsignal={prog.stopsignal}",
        f"stopwaitsecs={prog.stopwaitsecs}",
        f"stopasgroup={'true' if prog.stopasgroup else 'false'}",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={paths.log(prog.log_name)}",
        "stdout_logfile_maxbytes=20MB",
        "stdout_logfile_backups=2",
        "",
    ]


def render_config(
    programs: list[Program], paths: StatePaths, secrets: list[str]
) -> tuple[str, dict[str, dict[str, str]]]:
    """The supervisord config text, and the secret variables of each program (for its private file).

    The text holds a digest of those secrets, so that a changed secret changes the config (``up`` then
    restarts the stack) without the config holding any secret.
    """
    secret, public = split_env(programs, secrets)
    digest = hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()
    sock = paths.supervisor_socket
    lines = [
        "; Generated by infra/local (embedded MLOps stack). Do not edit: `up` rewrites it.",
        "; Secrets are not in this file: each program's launcher reads them from its private file in run/.",
        f"; secrets digest: {digest}",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={paths.supervisord_log}",
        "logfile_maxbytes=10MB",
        "logfile_backups=2",
        "loglevel=info",
        f"pidfile={paths.supervisord_pid}",
        f"childlogdir={paths.logs}",
        f"directory={paths.root}",
        "nodaemon=false",
        "silent=true",
        "identifier=mlops-stack",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
        "",
    ]
    for index, prog in enumerate(programs):
        lines += _program_section(prog, (index + 1) * 10, paths, public[prog.name], secrets)
    return "\n".join(lines), secret


#: A one-shot job (e.g. ``airflow db migrate``) that fails is retried this often by supervisor, not more.
ONESHOT_START_RETRIES = 3


def supervisord_env(paths: StatePaths, base: dict[str, str] | None = None) -> dict:
    """Environment of the supervisord process, with no secret (each program's launcher loads its own).

    A small allow-list of the caller's environment, the virtualenv first on PATH and the instance marker.
    """
    base = dict(os.environ if base is None else base)
    env = {k: base[k] for k in PASSTHROUGH_ENV if k in base}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), base.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    env[STACK_MARKER_ENV] = str(paths.root)
    return env


def write_secret_files(paths: StatePaths, secrets: dict[str, dict[str, str]]) -> None:
    """Write each program's secret variables to its private file (0600; JSON), removing stale ones."""
    paths.run.mkdir(parents=True, exist_ok=True)
    for program, env in secrets.items():
        write_private(paths.secrets_file(program), json.dumps(env, sort_keys=True))
    wanted = {paths.secrets_file(p).name for p in secrets}
    for stale in paths.run.glob("*.secrets.json"):
        if stale.name not in wanted:
            stale.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# XML-RPC over the unix socket, with timeouts
# ---------------------------------------------------------------------------------------------------------
class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixHTTPConnection(self._path, self._timeout)


@dataclass
class ProcessInfo:
    """supervisor's view of one program."""

    name: str
    state: str
    pid: int
    start: float
    exitstatus: int
    spawnerr: str

    @classmethod
    def from_rpc(cls, d: dict[str, Any]) -> ProcessInfo:
        """From supervisor's ``getProcessInfo`` dict."""
        return cls(d["name"], d["statename"], d["pid"], d["start"], d["exitstatus"], d.get("spawnerr", ""))


class SupervisorClient:
    """The supervisord XML-RPC API of one stack."""

    def __init__(self, socket_path: Path, timeout: float = 15.0):
        self.socket_path = socket_path
        self._proxy = xmlrpc.client.ServerProxy(
            "http://localhost", transport=_UnixTransport(str(socket_path), timeout), allow_none=True
        )

    @property
    def rpc(self) -> Any:
        """The ``supervisor.*`` XML-RPC namespace."""
        return self._proxy.supervisor

    def ping(self) -> bool:
        """Whether supervisord answers and is running (not shutting down)."""
        if not self.socket_path.exists():
            return False
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return False

    def pid(self) -> int:
        """PID of supervisord."""
        return int(self.rpc.getPID())

    def info(self, name: str) -> ProcessInfo:
        """State of one program."""
        return ProcessInfo.from_rpc(self.rpc.getProcessInfo(name))

    def all_info(self) -> dict[str, ProcessInfo]:
        """State of every program, by name."""
        return {d["name"]: ProcessInfo.from_rpc(d) for d in self.rpc.getAllProcessInfo()}

    def start(self, name: str) -> None:
        """Ask supervisord to start ``name`` without waiting (already running is fine)."""
        try:
            self.rpc.startProcess(name, False)
        except xmlrpc.client.Fault as e:
            if "ALREADY_STARTED" not in e.faultString:
                raise

    def stop(self, name: str) -> None:
        """Ask supervisord to stop ``name`` without waiting (already stopped is fine)."""
        try:
            self.rpc.stopProcess(name, False)
        except xmlrpc.client.Fault as e:
            if "NOT_RUNNING" not in e.faultString:
                raise

    def shutdown(self) -> None:
        """Ask supervisord to stop its programs and exit (errors ignored)."""
        with contextlib.suppress(OSError, xmlrpc.client.Error, http.client.HTTPException):
            self.rpc.shutdown()


# ---------------------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------------------
def read_pid(paths: StatePaths) -> int | None:
    """PID of this stack's supervisord if its pidfile names a live supervisord of this config."""
    try:
        pid = int(paths.supervisord_pid.read_text().strip())
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    if "supervisord" in cmdline and str(paths.supervisord_conf) in cmdline:
        return pid
    return None


def clear_stale(paths: StatePaths) -> list[str]:
    """Remove the pidfile and socket of a supervisord that is gone (crash, kill -9, reboot)."""
    removed = []
    if read_pid(paths) is None:
        for f in (paths.supervisord_pid, paths.supervisor_socket):
            if f.exists() or f.is_symlink():
                f.unlink()
                removed.append(str(f))
    return removed


def launch(paths: StatePaths, env: dict[str, str], timeout: float = 30.0) -> SupervisorClient:
    """Start supervisord (it daemonizes once its socket listens) and wait until it answers."""
    cmd = [str(VENV_BIN / "supervisord"), "-c", str(paths.supervisord_conf)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=paths.root)
    if result.returncode != 0:
        raise RuntimeError(
            f"supervisord failed to start (exit {result.returncode}): {result.stderr.strip() or result.stdout}"
            f"\nsee {paths.supervisord_log}"
        )
    client = SupervisorClient(paths.supervisor_socket)
    deadline = time.monotonic() + timeout
    while not client.ping():
        if time.monotonic() > deadline:
            raise TimeoutError(f"supervisord did not answer on {paths.supervisor_socket} within {timeout:.0f} s")
        time.sleep(0.1)
    return client


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _cwd_inside(proc: psutil.Process, root: Path) -> bool:
    try:
        return Path(proc.cwd()).is_relative_to(root)
    except (psutil.Error, OSError, ValueError):
        return False


def stack_processes(paths: StatePaths, session: int | None = None) -> list[psutil.Process]:
    """Every live process started for this stack, supervisord included, even if orphaned.

    A process is this stack's if its environment carries the stack's marker, or if it belongs to the
    session of such a process or of ``session`` (this stack's supervisord, known alive: supervisord starts
    a session when it daemonizes and every program and descendant stays in it), or if it is in a process
    group recorded by a program's launcher (``StatePaths.group_file``) or descends from such a process. The
    session test finds the processes that rewrite their environment block with their title (Postgres
    backends, Airflow's API server and executor workers). Without a known session, a process in the session
    named by a stale pidfile counts only if its working directory is inside the state directory (after a
    reboot that PID may lead an unrelated session).
    """
    root = paths.root
    me, my_sid = os.getpid(), _sid(0)
    marked: list[psutil.Process] = []
    rest: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            env = {}
        (marked if env.get(STACK_MARKER_ENV) == str(root) else rest).append(proc)
    sids = {_sid(p.pid) for p in marked} | ({session} if session else set())
    sids -= {None, my_sid}
    stale = None
    if session is None:
        with contextlib.suppress(OSError, ValueError):
            stale = int(paths.supervisord_pid.read_text().strip())
    found = {p.pid: p for p in marked}
    for proc in rest:
        sid = _sid(proc.pid)
        if sid is None or sid == my_sid:
            continue
        if sid in sids or (stale is not None and sid == stale and _cwd_inside(proc, root)):
            found[proc.pid] = proc
    # The process group each program's launcher recorded, with the members' descendants, whatever they did
    # to their own process group (e.g. Airflow's task processes) or environment.
    for record in sorted(paths.run.glob("*.pgid")) if paths.run.is_dir() else []:
        for sid in sids:
            for proc in previous_group(record, sid):
                if proc.pid != me:
                    found.setdefault(proc.pid, proc)
    return list(found.values())


def terminate(procs: list[psutil.Process], timeout: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout``; the PIDs that had to be killed (:func:`infra.local.launch.end`)."""
    return end(procs, timeout)
