"""moto's S3 server in this process: fast, in memory, accepts any key. For unit tests and benchmarks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

# The keys moto accepts and the clients of these helpers use (boto3, MLflow's S3 artifact store).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto_s3(port: int = 0) -> tuple[Any, str]:
    """Start moto's threaded server on 127.0.0.1 (port 0: the kernel's choice); returns (server, endpoint URL).

    werkzeug's one-line-per-request log is turned down to warnings. Stop the server with ``server.stop()``.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@contextlib.contextmanager
def running_moto_s3() -> Iterator[str]:
    """moto's S3 server for the ``with`` block; yields its endpoint URL and always stops it."""
    server, url = start_moto_s3()
    try:
        yield url
    finally:
        server.stop()


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client of ``endpoint_url`` with the :data:`AWS_ENV` keys."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )
