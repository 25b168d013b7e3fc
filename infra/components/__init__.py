"""Pulumi components of the platform, rendered from the service catalog.

:class:`MlopsPlatform` creates one generic :class:`ServiceDeployment` per catalog service (container specs
in :mod:`infra.components.services`) and the :class:`LambdaApi`; ``infra/__main__.py`` only loads the
config, creates the platform and exports its outputs.
"""

from infra.aws_lambda.pulumi_component import LambdaApi
from infra.components.config import StackConfig
from infra.components.platform import MlopsPlatform
from infra.components.secrets import PlatformSecrets
from infra.components.service import ContainerSpec, Job, ServiceDeployment

__all__ = [
    "ContainerSpec",
    "Job",
    "LambdaApi",
    "MlopsPlatform",
    "PlatformSecrets",
    "ServiceDeployment",
    "StackConfig",
]
