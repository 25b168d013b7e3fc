"""Start a supervised program after removing what a previous instance of it left behind.

supervisor runs ``python infra/local/launch.py <command...>`` which then *replaces itself* (``exec``) with
the command, so supervisor still signals and watches the real process. Before that, it terminates every
process that carries this stack's marker and this program's ``SUPERVISOR_PROCESS_NAME`` in its environment:
children of a previous instance that was killed (e.g. ``mlflow server``'s uvicorn worker, which keeps the
port and would make every restart fail with "address already in use").

Run by path, not as ``-m infra.local.launch``: importing the package would cost ~0.3 s per start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import psutil

MARKER = "MLOPS_STACK_INSTANCE"  # same as infra.local.supervisor.STACK_MARKER_ENV


def leftovers(instance: str, program: str) -> list[psutil.Process]:
    """Processes of an earlier instance of ``program`` in stack ``instance`` (never this process)."""
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


def main(argv: list[str]) -> None:
    """Clean up, then exec ``argv``."""
    if not argv:
        sys.exit("usage: launch.py <command> [args...]")
    instance, program = os.environ.get(MARKER), os.environ.get("SUPERVISOR_PROCESS_NAME")
    if instance and program:
        procs = leftovers(instance, program)
        if procs:
            print(
                f"[launch] terminating {len(procs)} leftover process(es) of {program}: {[p.pid for p in procs]}",
                flush=True,
            )
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(procs, timeout=10)
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(alive, timeout=5)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
