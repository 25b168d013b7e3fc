"""How much memory the embedded stack uses: proportional set size (PSS) by supervised program."""

from __future__ import annotations

from typing import Any

import psutil

from infra.local.supervisor import SupervisorClient


def _pss_mb(proc: psutil.Process) -> float:
    try:
        return float(proc.memory_full_info().pss) / 2**20
    except psutil.Error:
        return 0.0


def stack_memory(supervisord_pid: int | None, client: SupervisorClient | None) -> dict[str, Any]:
    """PSS of supervisord's process tree in MB: ``{"total_mb", "by_program", "processes"}``.

    Each program counts with all its descendants (e.g. the API's gunicorn master and worker); PSS shares
    pages between processes fairly, so forked workers are not counted twice.
    """
    if supervisord_pid is None or client is None:
        return {"total_mb": 0.0, "by_program": {}, "processes": 0}
    root = psutil.Process(supervisord_pid)
    by_program: dict[str, float] = {"supervisord": _pss_mb(root)}
    count = 1
    names = {i.pid: n for n, i in client.all_info().items() if i.pid}
    for child in root.children():
        tree = [child, *child.children(recursive=True)]
        count += len(tree)
        by_program[names.get(child.pid, f"pid {child.pid}")] = round(sum(_pss_mb(p) for p in tree), 1)
    return {"total_mb": round(sum(by_program.values()), 1), "by_program": by_program, "processes": count}
