"""The replay's error type and its check that every input set on a resource is one it carries out."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


class ReplayError(RuntimeError):
    """The replay cannot carry out what the program asks for, or a resource failed as the provider's would."""


def check_inputs(typ: str, name: str, inputs: Mapping[str, Any], carried_out: Collection[str]) -> None:
    """Fail on any input (set to something other than None/empty) that the replay does not carry out."""
    ignored = sorted(k for k, v in inputs.items() if k not in carried_out and v not in (None, [], {}, ""))
    if ignored:
        raise ReplayError(f"{typ} {name}: input(s) {ignored} are not carried out by the replay")
