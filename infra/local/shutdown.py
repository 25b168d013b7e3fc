"""Stopping the embedded stack: programs in reverse dependency order, then what a kill leaves behind."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from infra import catalog
from infra.local.settings import StackSettings
from infra.local.supervisor import STOPPED_STATES, SupervisorClient

POLL_S = 0.25


def stop_in_waves(client: SupervisorClient, timeout_s: float, out: Callable[[str], None]) -> None:
    """Stop in waves: a service stops once everything depending on it has stopped; jobs first.

    Gives up after ``timeout_s`` (supervisord then kills what is left when it shuts down).
    """
    deadline = time.monotonic() + timeout_s
    info = client.all_info()
    running = {n for n, i in info.items() if i.state not in STOPPED_STATES}
    while running:
        wave = [
            n
            for n in running
            if n not in catalog.SERVICES
            or not any(n in catalog.SERVICES[m].depends_on for m in running if m in catalog.SERVICES)
        ]
        t = time.monotonic()
        for n in wave:
            client.stop(n)
        while True:
            info = client.all_info()
            left = [n for n in wave if info[n].state not in STOPPED_STATES]
            if not left:
                out(f"  stopped {', '.join(sorted(wave))} in {time.monotonic() - t:.1f} s")
                break
            if time.monotonic() > deadline:
                out(f"stop timeout: {left} still running; supervisord will kill them")
                return
            time.sleep(POLL_S)
        running -= set(wave)


def remove_seaweed_sockets(settings: StackSettings) -> None:
    """Remove SeaweedFS' gRPC sockets of the stack's ports if a kill left them behind.

    ``weed mini`` (4.48) hard-codes them as /tmp/seaweedfs-<server>-grpc-<port>.sock and removes them on
    a clean stop.
    """
    if settings.s3_backend != "seaweedfs":
        return
    for server, (_http, grpc) in settings.seaweed_ports().items():
        sock = Path(f"/tmp/seaweedfs-{server}-grpc-{grpc}.sock")
        with contextlib.suppress(OSError):
            if sock.is_socket():
                sock.unlink()
