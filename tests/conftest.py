"""Shared pytest configuration: every test runs with MLflow telemetry off and markers by folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder (tests/unit -> unit, tests/integration -> integration) unless marked already."""
    for item in items:
        path = str(item.path)
        if "/tests/unit/" in path and not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.unit)
        elif "/tests/integration/" in path and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
