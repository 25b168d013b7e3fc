"""Start a supervised program after ending everything a previous instance of it left behind.

supervisor runs ``python infra/local/launch.py <command...>`` which then *replaces itself* (``exec``) with
the command, so supervisor still signals and watches the real process. supervisor starts every program as
the leader of its own process group; this launcher records that group in
``<state>/run/<program>.pgid`` (the stack's ``StatePaths.group_file``). When the program starts again, the
launcher first ends the previous instance's group **and every descendant of its members**, whatever they
did to their titles, environments or own process groups: e.g. the LocalExecutor workers of a SIGKILLed
Airflow scheduler (which hold its database sessions and row locks) and the task processes they started,
or the backends of a SIGKILLed Postgres (which hold its shared memory, so the new postmaster would refuse
to start). Processes that still carry this stack's marker and this program's name in their environment are
ended too. A group counts only inside supervisord's session (the stack's), so a recycled process group id
can never point at someone else's processes.

The launcher also loads the program's secret environment variables from its private file in the same
directory (written by ``up``; supervisord itself never holds a secret).

With ``--user NAME`` (a program that runs as another OS user, e.g. Postgres when the stack runs as root)
the clean-up runs with the launcher's rights and the program as that user. ``infra/local/supervisor.py``
reads the same records when it stops the stack (``make down``).
Run by path, not as ``-m infra.local.launch``: importing the package would cost ~0.3 s per start.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sys
from pathlib import Path

import psutil

MARKER = "MLOPS_STACK_INSTANCE"  # same as infra.local.supervisor.STACK_MARKER_ENV
RUN_DIR = "run"  # same as infra.local.layout.StatePaths.run


def group_file(instance: str, program: str) -> Path:
    """The record of ``program``'s process group in stack ``instance`` (its state directory)."""
    return Path(instance) / RUN_DIR / f"{program}.pgid"


def group_members(pgid: int, session: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid`` in ``session``, and all their descendants."""
    members: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != me and os.getpgid(proc.pid) == pgid and os.getsid(proc.pid) == session:
                members[proc.pid] = proc
        except (OSError, psutil.Error):
            continue
    for proc in list(members.values()):
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                if child.pid != me:
                    members.setdefault(child.pid, child)
    return list(members.values())


def previous_group(record: Path, session: int) -> list[psutil.Process]:
    """What is left of the instance recorded in ``record`` (empty when it ended cleanly)."""
    try:
        pgid = int(record.read_text().strip())
    except (OSError, ValueError):
        return []
    return group_members(pgid, session) if pgid != os.getpgid(0) else []


def leftovers(instance: str, program: str) -> list[psutil.Process]:
    """Processes that carry stack ``instance``'s marker and ``program``'s name (never this process)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get(MARKER) == instance and env.get("SUPERVISOR_PROCESS_NAME") == program:
            found.append(proc)
    return found


def end(procs: list[psutil.Process], timeout: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL what is still alive after ``timeout``; returns the PIDs that had to be killed."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in alive]


def load_secrets(instance: str, program: str) -> None:
    """Put the program's secret variables (``StatePaths.secrets_file``: 0600, JSON) into the environment."""
    path = Path(instance) / RUN_DIR / f"{program}.secrets.json"
    with contextlib.suppress(FileNotFoundError):
        os.environ.update(json.loads(path.read_text()))


def drop_privileges(user: str) -> None:
    """Become ``user`` (groups, gid, uid; HOME and USER too) before running the program."""
    entry = pwd.getpwnam(user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)


def main(argv: list[str]) -> None:
    """Clean up, record this instance's process group, then exec ``argv`` (as ``--user`` if given)."""
    user = None
    if argv[:1] == ["--user"] and len(argv) > 2:
        user, argv = argv[1], argv[2:]
    if not argv:
        sys.exit("usage: launch.py [--user NAME] <command> [args...]")
    instance, program = os.environ.get(MARKER), os.environ.get("SUPERVISOR_PROCESS_NAME")
    if instance and program:
        record = group_file(instance, program)
        procs = {p.pid: p for p in previous_group(record, os.getsid(0))}
        procs |= {p.pid: p for p in leftovers(instance, program)}
        if procs:
            print(f"[launch] ending {len(procs)} leftover process(es) of {program}: {sorted(procs)}", flush=True)
            end(list(procs.values()))
        with contextlib.suppress(OSError):  # best effort: the record only speeds up the next clean-up
            record.write_text(f"{os.getpgid(0)}\n")
        load_secrets(instance, program)
    if user is not None:
        drop_privileges(user)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
