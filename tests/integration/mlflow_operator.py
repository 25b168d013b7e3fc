"""MLflow's client as the stack's operator: its server requires a login (the basic-auth app)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from infra.local import Stack

VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def login_env(stack: Stack) -> dict[str, str]:
    """The operator's MLflow login as the variables MLflow's client reads."""
    return dict(zip(VARIABLES, stack.mlflow_login(), strict=True))


@contextlib.contextmanager
def logged_in(stack: Stack) -> Iterator[None]:
    """MLflow clients created in the block log in as ``stack``'s operator (the variables are restored)."""
    saved = {k: os.environ.get(k) for k in VARIABLES}
    os.environ.update(login_env(stack))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
