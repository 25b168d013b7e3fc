#!/bin/sh
# Stand-in for /lambda-entrypoint.sh of AWS's Lambda base images. LocalStack replaces the entrypoint with its
# own init (/var/rapid/init); this one only serves `docker run IMAGE handler` under a Lambda Runtime API.
if [ $# -ne 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" 1>&2
    exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
    echo "the stand-in image has no aws-lambda-rie: set AWS_LAMBDA_RUNTIME_API to a Runtime API" 1>&2
    exit 142
fi
exec /var/runtime/bootstrap
