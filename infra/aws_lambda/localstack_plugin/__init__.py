"""The LocalStack Lambda executor plugin as seen from the main environment (see ``mlops_localstack_lambda``)."""
