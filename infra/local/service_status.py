"""``make status``'s verdict on one service: its process state, its check and whether it is healthy.

The one health decision: ``status``, ``up``'s waits and the tests' waits all go through
:func:`service_health` (via ``Stack.status`` and ``Stack.service_status``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from infra import catalog
from infra.local import health
from infra.local.service_hooks import HookContext, hooks_for
from infra.local.supervisor import ProcessInfo

#: What ``status`` says about a program that is not RUNNING (supervisor's process states).
PROCESS_STATE_DETAIL = {
    "STARTING": "starting",
    "BACKOFF": "restarting: it exited and supervisor retries with a growing back-off (see its log)",
    "FATAL": "gave up restarting (see its log); `make up` starts it again",
    "STOPPED": "stopped",
    "EXITED": "exited",
}


def service_health(
    name: str,
    pi: ProcessInfo | None,
    creds: catalog.Credentials | None,
    topology: catalog.Topology,
    log: Path,
    airflow_doc: dict[str, Any],
) -> dict[str, Any]:
    """State, check and verdict of service ``name``; ``airflow_doc`` caches Airflow's health document."""
    hc = catalog.SERVICES[name].health
    entry: dict[str, Any] = {
        "state": pi.state if pi else "NOT STARTED",
        "pid": pi.pid if pi and pi.pid else None,
        "uptime_s": round(time.time() - pi.start, 1) if pi and pi.state == "RUNNING" else None,
        "check": hc.describe(),
        "log": str(log),
    }
    if catalog.SERVICES[name].port:
        entry["url"] = topology.url(name)
    if pi is None or pi.state != "RUNNING" or creds is None:
        result = health.Health(False, PROCESS_STATE_DETAIL.get(pi.state if pi else "", "process not running"))
    elif hc.kind == "airflow-component":
        if not airflow_doc:
            try:
                airflow_doc.update(health.airflow_health(topology))
            except Exception as e:
                airflow_doc["_error"] = str(e)
        # The heartbeat must come from the running process, not from the one it replaced.
        result = health.check_airflow_component(topology, hc.component, pi.start, airflow_doc)
    else:
        result, extra = hooks_for(name).status(HookContext(name, topology, creds, log_path=log))
        entry.update(extra)
    entry["healthy"] = result.ok
    entry["detail"] = result.detail
    return entry
