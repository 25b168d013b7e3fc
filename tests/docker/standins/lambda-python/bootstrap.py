"""Stand-in for /var/runtime/bootstrap.py of AWS's python3.12 image: the runtime interface client on ``_HANDLER``.

sys.path as in Lambda: the function code first, then the layer paths, the standard library and site-packages,
and /var/runtime (awslambdaric, boto3) last, so a package bundled with the function wins over the runtime's.
"""

import os
import sys


def main() -> None:
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    rest = [p for p in sys.path[1:] if p != runtime_dir]  # sys.path[0] is this script's directory
    sys.path[:] = [task_root, "/opt/python/lib/python3.12/site-packages", "/opt/python", *rest, runtime_dir]
    from awslambdaric.__main__ import main as ric_main

    ric_main([sys.argv[0], os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
