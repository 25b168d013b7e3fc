"""LocalStack's default gateway server (twisted), listening only on the host of ``GATEWAY_LISTEN``.

LocalStack 2026.3.0's ``TwistedRuntimeServer.register`` opens ``TCP4ServerEndpoint(reactor, port)`` without
an interface (its own ``TODO: interface = host?``): the gateway listens on all interfaces whatever
``GATEWAY_LISTEN`` says. Its ``hypercorn`` server binds correctly but costs ~10 ms more per Lambda
invocation (each one crosses the gateway three times). This server is twisted with the interface passed:
``GATEWAY_SERVER=twisted-bound`` (an unknown name makes LocalStack refuse to start, so a missing plugin
cannot silently listen everywhere).
"""

from __future__ import annotations

from typing import Any

from localstack.runtime.server.twisted import TwistedRuntimeServer
from twisted.internet import endpoints


class BoundTwistedRuntimeServer(TwistedRuntimeServer):
    """``TwistedRuntimeServer`` whose IPv4 endpoints listen on the configured host only."""

    def register(self, gateway: Any, listen: list[Any], ssl_creds: tuple[str, str] | None = None) -> None:
        """Register as LocalStack does, with each IPv4 endpoint bound to its ``GATEWAY_LISTEN`` host."""
        hosts = {hp.port: hp.host for hp in listen}
        original = endpoints.TCP4ServerEndpoint

        def bound(reactor: Any, port: int, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("interface", hosts.get(port, ""))
            return original(reactor, port, *args, **kwargs)

        endpoints.TCP4ServerEndpoint = bound  # type: ignore[misc]  # only while LocalStack's register runs
        try:
            super().register(gateway, listen, ssl_creds)
        finally:
            endpoints.TCP4ServerEndpoint = original  # type: ignore[misc]
