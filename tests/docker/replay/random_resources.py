"""pulumi-random's ``RandomPassword``, generated as the provider would (``secrets``, the requested classes)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from tests.docker.replay.errors import check_inputs

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
INPUTS = {"length", "special", "lower", "upper", "numeric"}


def password(name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A fresh password of ``length`` characters from the enabled classes (each default on, as the provider's)."""
    check_inputs(RANDOM_PASSWORD, name, inputs, INPUTS)
    classes = {
        "lower": string.ascii_lowercase,
        "upper": string.ascii_uppercase,
        "numeric": string.digits,
        "special": "!@#$%&*()-_=+[]{}<>:?",
    }
    alphabet = "".join(chars for key, chars in classes.items() if inputs.get(key, True))
    value = "".join(secrets.choice(alphabet) for _ in range(int(inputs["length"])))
    return "none", {**inputs, "result": value}
