"""LocalStack without Docker: host mode with a Lambda executor that runs functions as local processes.

* :mod:`infra.aws_lambda.localstack_venvs` -- LocalStack's own locked environments and its command line;
* :mod:`infra.aws_lambda.runtime_api` -- the Lambda Runtime API emulator (run a built zip the way Lambda does);
* ``infra/aws_lambda/localstack_plugin`` -- the LocalStack executor plugin (installed into LocalStack's environment).

See ``infra/aws_lambda/README.md``.
"""
