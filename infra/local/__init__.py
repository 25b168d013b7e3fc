"""The embedded stack: the catalog's services as supervised local processes (no Docker).

Public API::

    from infra.local import Stack, StackSettings, allocate_ports

    stack = Stack(StackSettings())          # settings from MLOPS_STACK_* (state dir, ports, switches)
    stack.up()                              # -> {service: seconds to healthy, "total": s}
    stack.status()                          # -> {"healthy": bool, "services": {...}, ...}
    stack.lambda_endpoints()                # -> {"function_url": {...}, "rest_v1": {...}} (LocalStack on)
    stack.trigger_dag("etl_breast_cancer")  # -> run id
    stack.wait_for_dag_run(dag_id, run_id, on_progress=callback)  # -> "success" | "failed"
    stack.down(); stack.destroy()

Command line: ``python -m infra.local up|down|destroy|status [--json]|logs [service] [-f]|env|memory|pipeline``.
"""

from infra.local.airflow_client import AirflowClient, AirflowError, DagRunProgress
from infra.local.ports import allocate_ports
from infra.local.settings import StackSettings
from infra.local.stack import Stack, StackError

__all__ = [
    "AirflowClient",
    "AirflowError",
    "DagRunProgress",
    "Stack",
    "StackError",
    "StackSettings",
    "allocate_ports",
]
