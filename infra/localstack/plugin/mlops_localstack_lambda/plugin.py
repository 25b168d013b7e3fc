"""The plux plugins: the executor (``localstack.lambda.runtime_executor``) and a bound gateway server.

LocalStack resolves ``LAMBDA_RUNTIME_EXECUTOR`` through ``EXECUTOR_PLUGIN_MANAGER.load(name).load()``;
``load`` returns the executor class. The LocalStack version is checked here, before anything else is
imported, so that a different release fails with one clear message instead of an obscure attribute error.
Note that LocalStack silently falls back to the Docker executor when no plugin of the configured name is
installed: the stack's health check should verify that functions actually run.
"""

from __future__ import annotations

from typing import Any

from localstack.runtime.server.core import RuntimeServerPlugin
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

from . import EXECUTOR_NAME, GATEWAY_SERVER_NAME, check_localstack_version


class LocalProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """``LAMBDA_RUNTIME_EXECUTOR=local-process``."""

    name = EXECUTOR_NAME

    def load(self, *args: Any, **kwargs: Any) -> type:
        """Return the executor class (after checking the LocalStack release)."""
        check_localstack_version()
        from .executor import LocalProcessRuntimeExecutor

        return LocalProcessRuntimeExecutor


class BoundTwistedRuntimeServerPlugin(RuntimeServerPlugin):
    """``GATEWAY_SERVER=twisted-bound``: LocalStack's twisted gateway, listening on its configured host only."""

    name = GATEWAY_SERVER_NAME

    def load(self, *args: Any, **kwargs: Any) -> Any:
        """Return the server instance (after checking the LocalStack release)."""
        check_localstack_version()
        from .server import BoundTwistedRuntimeServer

        return BoundTwistedRuntimeServer()
