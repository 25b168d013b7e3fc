"""Free-port allocation for isolated stacks."""

from __future__ import annotations

import socket

import pytest

from infra.local.ports import allocate_ports, port_is_free, port_is_listening
from infra.local.settings import GRPC_OFFSET, SEAWEED_PORT_FIELDS, StackSettings

pytestmark = pytest.mark.unit


def test_allocated_ports_are_distinct_free_and_accepted_by_settings() -> None:
    ports = allocate_ports()
    assert set(ports) >= {"postgres_port", "s3_port", "mlflow_port", "airflow_port", "api_port", *SEAWEED_PORT_FIELDS}
    settings = StackSettings(**ports)  # validates: no collision, twins included
    listening = settings.listening_ports()
    assert len(set(listening.values())) == len(listening)
    for port in listening.values():
        assert port_is_free(port), port


def test_paired_ports_have_a_free_grpc_twin() -> None:
    ports = allocate_ports()
    for field in ("s3_port", *SEAWEED_PORT_FIELDS):
        assert ports[field] + GRPC_OFFSET < 65536
        assert port_is_free(ports[field] + GRPC_OFFSET)


def test_two_allocations_can_differ() -> None:
    assert allocate_ports() != allocate_ports()


def test_port_probes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
        assert port_is_listening(port)
    assert port_is_free(port)
    assert not port_is_listening(port)
