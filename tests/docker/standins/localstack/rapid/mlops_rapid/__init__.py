"""The stand-in for LocalStack's Lambda init, copied into each function container under /var/rapid.

``interop.py``, ``runtime_api.py`` and ``lambda_process.py`` are copies of
``infra/aws_lambda/localstack_plugin/mlops_localstack_lambda/`` made when the stand-in image is built
(standard library only); ``main.py`` is the entrypoint.
"""
