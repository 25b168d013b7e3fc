"""Figures the Docker tier measures (build, up, training, restart, destroy, memory), printed at the end.

Tests call :func:`record`; the tier's conftest prints :func:`summary` in pytest's terminal summary, so
every run of ``make test-docker`` ends with the same table (quoted in ``docs/pulumi-docker.md`` with its date).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

_FIGURES: dict[str, dict[str, float]] = {}


def record(section: str, values: Mapping[str, float]) -> None:
    """Add (or update) figures under ``section``."""
    _FIGURES.setdefault(section, {}).update(values)


def summary() -> list[str]:
    """The figures as lines of text (empty when nothing was measured)."""
    if not _FIGURES:
        return []
    lines = [f"Docker tier figures ({datetime.date.today().isoformat()}):"]
    for section, values in _FIGURES.items():
        lines.append(f"  {section}:")
        lines += [f"    {name:<34} {value:10.1f}" for name, value in values.items()]
    return lines
