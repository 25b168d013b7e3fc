"""Benchmark: the embedded stack from a cold start to a served champion, and its idle memory.

Starts an isolated stack (temporary state directory, free ports, dependencies already installed) and
prints: seconds from ``up`` to all services healthy; seconds from there to the champion being served by
the API with the default trial budget (ETL + training DAGs through Airflow); and the stack's total
memory (PSS over supervisord's process tree) after it has been idle for a while. The stack is destroyed
at the end.

    .venv/bin/python bench/stack.py [--idle 30] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.local import Stack, StackSettings, allocate_ports, quickstart
from ml.settings import MLSettings

TARGETS = {"healthy_s": 60.0, "champion_s": 180.0, "pss_gb": 2.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=30.0, help="Seconds of idling before measuring memory.")
    parser.add_argument("--keep", action="store_true", help="Keep the stack (print its state dir) at the end.")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-stack-", dir="/tmp"))
    root.chmod(0o711)  # Postgres runs as another OS user when we are root
    stack = Stack(StackSettings(state_dir=root / "state", **allocate_ports()), out=lambda _msg: None)
    try:
        started = time.monotonic()
        timings = stack.up()
        healthy = time.monotonic() - started
        result = quickstart.run(stack, out=lambda _msg: None)
        champion = time.monotonic() - started - healthy
        time.sleep(args.idle)
        memory = stack.memory()
        pss_gb = memory["total_mb"] / 1024

        settings = MLSettings()
        print(f"services: {', '.join(stack.services())}")
        print("per service (s to healthy): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total"))
        print(f"up -> all healthy:            {healthy:6.1f} s   (target <= {TARGETS['healthy_s']:.0f} s)")
        print(
            f"healthy -> champion served:   {champion:6.1f} s   (target <= {TARGETS['champion_s']:.0f} s; "
            f"{settings.n_trials} trials, {settings.tuning_workers} workers; "
            + ", ".join(f"{r.dag_id} {r.seconds:.1f} s" for r in result.runs)
            + ")"
        )
        print(f"idle memory (PSS, {args.idle:.0f} s idle): {pss_gb:6.2f} GB (target <= {TARGETS['pss_gb']} GB)")
        for name, mb in sorted(memory["by_program"].items(), key=lambda kv: -kv[1]):
            print(f"    {name:<24} {mb:7.0f} MB")
    finally:
        if args.keep:
            print(f"kept: MLOPS_STACK_STATE_DIR={stack.paths.root}")
        else:
            stack.destroy()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
