"""LocalStack hook of the stand-in image: a Lambda runtime image that is present locally is not pulled.

LocalStack's Docker executor pulls the runtime image (``public.ecr.aws/lambda/python:3.12``) every time a
function version is prepared (``docker_runtime_executor._ensure_runtime_image_present``, called from
``DockerRuntimeExecutor.prepare_version``), whether or not the image is present. Without a registry the
pull fails (HTTP 500 from the engine -> ``ContainerException``) and the function goes to state ``Failed``
("Error while creating lambda: ..."). The pull is skipped only for an (image, platform) pair recorded in the
module-level set ``PULLED_IMAGES``; this hook runs just before that check (``prepare_docker_executor`` hooks
run first in ``prepare_version``) and records the pair when the engine already has the image. An image that is
absent is left to LocalStack's pull, as in the real image.
"""

from __future__ import annotations

import logging

from localstack.services.lambda_.hooks import prepare_docker_executor

LOG = logging.getLogger(__name__)


@prepare_docker_executor()
def use_local_runtime_image(function_version) -> None:
    from localstack.services.lambda_.invocation import docker_runtime_executor as executor
    from localstack.utils.container_utils.container_client import ContainerException, NoSuchImage
    from localstack.utils.docker_utils import DOCKER_CLIENT

    cfg = function_version.config
    if not cfg.runtime or not cfg.code:  # image-packaged functions (Pro) are not prepared here
        return
    image = executor.resolver.get_image_for_runtime(cfg.runtime)
    platform = executor.docker_platform(cfg.architectures[0])
    try:
        DOCKER_CLIENT.inspect_image(image, pull=False)
    except (NoSuchImage, ContainerException):
        return
    LOG.debug("Lambda runtime image %s is present locally: not pulling it (stand-in image)", image)
    executor.PULLED_IMAGES.add((image, platform))
