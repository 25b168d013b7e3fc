"""LocalStack without Docker: host mode with a Lambda executor that runs functions as local processes.

* :mod:`infra.localstack.venv` -- LocalStack's own locked environments and its command line;
* :mod:`infra.localstack.runtime_api` -- the Lambda Runtime API emulator (run a built zip the way Lambda does);
* ``infra/localstack/plugin`` -- the LocalStack executor plugin (installed into LocalStack's environment).

See ``infra/localstack/README.md``.
"""
