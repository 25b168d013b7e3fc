"""The Lambda Runtime API emulator, importable from the project's environment.

The implementation lives in the executor plugin (``localstack_plugin/mlops_localstack_lambda/``:
``runtime_api.py`` and ``lambda_process.py``) so LocalStack and the project run the very same code; this
module only re-exports it.
"""

from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda.lambda_process import (
    LambdaProcess,
    runtime_command,
    runtime_environment,
)
from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda.runtime_api import (
    DEFAULT_FUNCTION_ARN,
    EXIT_ERROR_TYPE,
    TIMEOUT_ERROR_TYPE,
    InvokeResult,
    RuntimeAPIServer,
    RuntimeInitError,
    bind_first_free,
    error_payload,
)

__all__ = [
    "DEFAULT_FUNCTION_ARN",
    "EXIT_ERROR_TYPE",
    "TIMEOUT_ERROR_TYPE",
    "InvokeResult",
    "LambdaProcess",
    "RuntimeAPIServer",
    "RuntimeInitError",
    "bind_first_free",
    "error_payload",
    "runtime_command",
    "runtime_environment",
]
