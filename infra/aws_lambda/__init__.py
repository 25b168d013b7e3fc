"""The prediction API as an AWS Lambda: its definition, its zip, its two deployers, and LocalStack without Docker.

The handler itself is ``api.lambda_handler.handler`` (the app through Mangum); everything else is here:

* :mod:`.spec` -- every resource as plain data (names, policies, handler, runtime, sizes, the zip's path)
  and the function's environment; both deployers read it;
* :mod:`.package_build` -- builds the deployment zip reproducibly (``python -m infra.aws_lambda.package_build``);
* :mod:`.package_cache` -- the zip for a deployment: rebuilt only when its inputs changed (``make lambda-zip``);
* :mod:`.pulumi_component` -- the Pulumi component ``LambdaApi`` (LocalStack in Docker, ``pulumi up``);
* :mod:`.localstack_deploy` -- the boto3 deployer (LocalStack in host mode, where Pulumi's CLI is absent);
* :mod:`.localstack_endpoints` -- boto3 clients for LocalStack, the fixed ids, the deployed endpoints;
* :mod:`.local_service` -- LocalStack as a service of the embedded stack (``infra.local``): program, health;
* :mod:`.local_deployment` -- what ``up`` does for the Lambda (zip, deploy, first requests), and redeploys;
* :mod:`.localstack_venvs` -- LocalStack's own locked environments (``localstack-env/``,
  ``lambda-runtime-env/``) and its command line;
* :mod:`.runtime_api` -- the Lambda Runtime API emulator (run a built zip the way Lambda does);
* :mod:`.interpreters` -- whether an interpreter is the Python version needed;
* ``localstack_plugin/`` -- the LocalStack executor plugin that runs functions as local processes (a
  distribution of its own, installed into LocalStack's environment).

See ``infra/aws_lambda/README.md``.
"""
