"""The plux plugins: the executor (``localstack.lambda.runtime_executor``) and a bound gateway server.

LocalStack resolves ``LAMBDA_RUNTIME_EXECUTOR`` through ``EXECUTOR_PLUGIN_MANAGER.load(name).load()``;
``load`` returns the executor class. The LocalStack version is checked here, before anything else is
imported, so that a different release fails with one clear message instead of an obscure attribute error.
Note that LocalStack silently falls back to the Docker executor when no plugin of the configured name is
installed: the stack's health check should verify that functions actually run.
"""

from __future__ import annotations

import gc
from typing import Any

from localstack.runtime.server.core import RuntimeServerPlugin
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

from . import EXECUTOR_NAME, GATEWAY_SERVER_NAME, check_localstack_version


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    LocalStack is one Python process serving the gateway, the Lambda control plane and our environments'
    callbacks. Its heap after start-up is large, and a full collection that walks it stalls every thread
    for a few hundred milliseconds: long enough that, under a steady request rate, each environment looks
    busy and LocalStack starts more of them (a burst of cold starts, then throttling). Objects created at
    start-up live for the whole process anyway.
    """
    gc.collect()
    gc.freeze()


class LocalProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """``LAMBDA_RUNTIME_EXECUTOR=local-process``."""

    name = EXECUTOR_NAME

    def load(self, *args: Any, **kwargs: Any) -> type:
        """Return the executor class (after checking the LocalStack release)."""
        check_localstack_version()
        from .executor import LocalProcessRuntimeExecutor

        freeze_heap()  # the Lambda service is loaded now: its objects too
        return LocalProcessRuntimeExecutor


class BoundTwistedRuntimeServerPlugin(RuntimeServerPlugin):
    """``GATEWAY_SERVER=twisted-bound``: LocalStack's twisted gateway, listening on its configured host only."""

    name = GATEWAY_SERVER_NAME

    def load(self, *args: Any, **kwargs: Any) -> Any:
        """Return the server instance (after checking the LocalStack release)."""
        check_localstack_version()
        from .server import BoundTwistedRuntimeServer

        return BoundTwistedRuntimeServer()
