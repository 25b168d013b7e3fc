"""LocalStack Lambda executor plugin: each execution environment is a local ``awslambdaric`` process.

Modules:

* :mod:`.runtime_api` -- the Lambda Runtime API server and ``LambdaProcess`` (stdlib only; also used by the
  project's tests to run a built zip the way Lambda does);
* :mod:`.interop` -- the protocol between LocalStack and its in-container init, spoken for a local process
  (stdlib only);
* :mod:`.executor` -- the ``RuntimeExecutor`` implementation (imports LocalStack);
* :mod:`.server` -- LocalStack's twisted gateway server bound to ``GATEWAY_LISTEN``'s host (imports LocalStack);
* :mod:`.plugin` -- the plux plugins registered in ``localstack.lambda.runtime_executor`` and
  ``localstack.runtime.server``.

This package must stay importable without LocalStack: nothing here imports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import metadata

#: The one LocalStack release whose internal executor interface this plugin implements.
LOCALSTACK_VERSION = "2026.3.0"
#: Value of LAMBDA_RUNTIME_EXECUTOR that selects this executor (the entry point's name).
EXECUTOR_NAME = "local-process"
#: Value of GATEWAY_SERVER that selects LocalStack's twisted server bound to GATEWAY_LISTEN's host (see .server).
GATEWAY_SERVER_NAME = "twisted-bound"
#: Environment variable of LocalStack's process: JSON object mapping a Lambda runtime to an interpreter that has
#: awslambdaric installed, e.g. {"python3.12": "/state/lambda-python3.12/bin/python"}.
PYTHONS_ENV = "MLOPS_LAMBDA_PYTHONS"
#: Environment variable of LocalStack's process: ``"<first>-<last>"``, the loopback ports (inclusive) the executor's
#: per-environment servers may listen on (two per execution environment). Unset: any free port.
PORTS_ENV = "MLOPS_LAMBDA_PORTS"


def check_localstack_version() -> str:
    """Return the installed LocalStack version; raise RuntimeError unless it is :data:`LOCALSTACK_VERSION`."""
    try:
        found = metadata.version("localstack-core")
    except metadata.PackageNotFoundError as e:
        raise RuntimeError("the local-process Lambda executor needs localstack-core, which is not installed") from e
    if found != LOCALSTACK_VERSION:
        raise RuntimeError(
            f"the local-process Lambda executor implements LocalStack {LOCALSTACK_VERSION}'s internal executor "
            f"interface, but LocalStack {found} is installed: update infra/aws_lambda/localstack_plugin for that "
            "release (check RuntimeExecutor, ExecutorEndpoint and the init protocol) or install the pinned release"
        )
    return found


def lambda_pythons(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runtime -> interpreter mapping from :data:`PYTHONS_ENV` (empty if unset); ValueError if malformed."""
    raw = (os.environ if environ is None else environ).get(PYTHONS_ENV, "").strip()
    if not raw:
        return {}
    mapping = json.loads(raw)
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError(f"{PYTHONS_ENV} must be a JSON object of runtime name -> interpreter path, got {raw!r}")
    return {str(k): v for k, v in mapping.items()}


def lambda_ports(environ: Mapping[str, str] | None = None) -> range | None:
    """The ports of :data:`PORTS_ENV` (``"first-last"``, inclusive) as a range; None if unset; ValueError if bad."""
    raw = (os.environ if environ is None else environ).get(PORTS_ENV, "").strip()
    if not raw:
        return None
    try:
        first, last = (int(part) for part in raw.split("-", 1))
    except ValueError:
        raise ValueError(f"{PORTS_ENV} must be '<first>-<last>' (e.g. '4610-4641'), got {raw!r}") from None
    if not 0 < first <= last < 65536:
        raise ValueError(f"{PORTS_ENV}: {raw!r} is not a port range")
    return range(first, last + 1)
