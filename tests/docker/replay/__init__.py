"""Replay of ``pulumi up`` / ``pulumi destroy`` on a real Docker engine, without the Pulumi CLI.

:func:`up` runs the unmodified program (``infra/__main__.py``) with a stack config under Pulumi's mock
framework, whose monitor carries out each resource for real: pulumi-docker resources through the Docker
SDK (images through BuildKit), pulumi-aws resources against the containerised LocalStack, pulumi-random
passwords. :meth:`Deployment.destroy` deletes everything in reverse dependency order. See
``tests/docker/README.md`` for what this does and does not exercise compared with a real ``pulumi up``.
"""

from tests.docker.replay.errors import ReplayError
from tests.docker.replay.program import Created, Deployment, stack_config, up

__all__ = ["Created", "Deployment", "ReplayError", "stack_config", "up"]
