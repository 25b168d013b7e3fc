"""How the API runs as a long-lived server (process and container): gunicorn's settings, read as a config module.

    gunicorn api.main:app --config python:api.server --bind 127.0.0.1:8800

One **gunicorn master** supervises one **uvicorn worker** (``uvicorn_worker.UvicornWorker``) that serves
the app. The master imports the app and everything loading a model needs (scikit-learn, skops) *before*
it forks (``preload_app`` and :func:`when_ready`), and it holds the listening socket. So when the worker
dies (SIGKILL, the OOM killer, a crash in native code), the master forks a new one from its warm memory,
which serves again in about 0.1 s from the local champion copy (``api.champion_cache``), while connections
wait in the socket's backlog instead of being refused; a worker whose event loop stalls for
:data:`timeout` seconds is killed and replaced the same way. Cold start (the master itself restarted by
its supervisor) costs the imports, 1.5-2 s on 2 cores.

Why one worker: the model store, its background registry check and the request log are per process, and
the CPU-heavy part (scikit-learn) already uses the machine's cores; scale out with more instances.
The Lambda does not use this module (Mangum calls the app directly; gunicorn is not in its package).
"""

from __future__ import annotations

import sys
from typing import Any


class _WithoutPandas:
    """Import finder that makes pandas absent from the server process.

    The API never uses pandas (its image and the Lambda have none), but scikit-learn imports it when
    installed, as in the embedded stack's shared virtualenv: ~0.4 s of every cold start. Absent, not ``None``
    in ``sys.modules``, which scikit-learn would take for pandas itself.
    """

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not used by the API server)", name=name)


if "pandas" not in sys.modules:
    sys.meta_path.insert(0, _WithoutPandas())

#: gunicorn settings (module-level names are read as settings by ``--config python:api.server``).
worker_class = "uvicorn_worker.UvicornWorker"
workers = 1
preload_app = True  # import the app in the master: a replacement worker starts warm
timeout = 30  # a worker that has not reported for this long (event loop blocked) is killed and replaced
graceful_timeout = 15  # SIGTERM: in-flight requests get this long before the worker is killed
keepalive = 5
accesslog = None  # the app writes its own JSON request log (api.logs)
control_socket_disable = True  # gunicorn 24+'s control socket under ~/.gunicorn: nothing here uses it
worker_tmp_dir = "/dev/shm"  # the heartbeat file, in memory (and writable in a read-only container)


def when_ready(server: Any) -> None:
    """In the master, listening, before the first fork: import what loading a model imports (workers start warm).

    After the socket is bound, so requests that arrive meanwhile wait in its backlog rather than being refused.
    """
    from api.model_loader import warm_imports

    warm_imports()


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: end it (SIGTERM, graceful) if the master dies, so no orphan keeps the port.

    Linux's parent-death signal; a master that died before it was set is caught by the ppid check.
    """
    import ctypes
    import os
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != worker.ppid:
        os.kill(os.getpid(), signal.SIGTERM)
