"""Free-port allocation for isolated stacks (tests) and port checks."""

from __future__ import annotations

import contextlib
import random
import socket

from infra.local.settings import CATALOG_PORT_FIELDS, GRPC_OFFSET, LOCALSTACK_LAMBDA_PORTS, SEAWEED_PORT_FIELDS

HOST = "127.0.0.1"
#: Ports that need a twin at ``+GRPC_OFFSET`` are drawn from here: base and twin (22000-32000) both stay
#: below Linux' default ephemeral range (32768-60999), where a client's outgoing connection could take one.
PAIRED_RANGE = (12000, 22000)
#: The block of LocalStack's Lambda environment ports is drawn from here (below the paired range).
BLOCK_RANGE = (6000, 11900)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now.

    Binds with SO_REUSEADDR, as servers do, so connections in TIME_WAIT (e.g. right after ``down``) do not
    count; a listening socket, on this address or on 0.0.0.0, does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def listener_of(port: int) -> str:
    """``(by <name> pid <pid>)`` of the process listening on ``port``, when we may know it."""
    try:
        import psutil

        for c in psutil.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
                return f"(by {psutil.Process(c.pid).name()} pid {c.pid})"
    except Exception:  # psutil may need privileges to see other users' sockets
        pass
    return ""


def _hold(port: int, held: list[socket.socket]) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
    except OSError:
        s.close()
        return False
    held.append(s)
    return True


def allocate_ports(rng: random.Random | None = None, attempts: int = 2000) -> dict[str, int]:
    """Free ports for every port field of :class:`~infra.local.settings.StackSettings`.

    All chosen ports (and the gRPC twins of the S3/SeaweedFS ports) are distinct and free at the time of
    the call; they are held open until every one is chosen, so no two fields get the same port. LocalStack's
    Lambda environments get a block of consecutive free ports (``localstack_lambda_port`` and the next ones).
    """
    rng = rng or random.SystemRandom()
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for field in ("s3_port", *SEAWEED_PORT_FIELDS):  # ports with a gRPC twin
            for _ in range(attempts):
                port = rng.randrange(*PAIRED_RANGE)
                if _hold(port, held):
                    if _hold(port + GRPC_OFFSET, held):
                        ports[field] = port
                        break
                    held.pop().close()
            else:
                raise RuntimeError(f"no free port pair (p, p+{GRPC_OFFSET}) found for {field}")
        for _ in range(attempts):  # LocalStack's Lambda environments: a block of consecutive ports
            base = rng.randrange(BLOCK_RANGE[0], BLOCK_RANGE[1] - LOCALSTACK_LAMBDA_PORTS)
            mark = len(held)
            if all(_hold(base + i, held) for i in range(LOCALSTACK_LAMBDA_PORTS)):
                ports["localstack_lambda_port"] = base
                break
            for s in held[mark:]:
                s.close()
            del held[mark:]
        else:
            raise RuntimeError(f"no block of {LOCALSTACK_LAMBDA_PORTS} free consecutive ports found")
        single = [f for f in CATALOG_PORT_FIELDS.values() if f != "s3_port"] + ["minio_console_port"]
        for field in single:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            held.append(s)
            ports[field] = s.getsockname()[1]
    finally:
        for s in held:
            s.close()
    return ports
