#!/bin/sh
# Entrypoint of the MLflow image: write the basic-auth config file (MLFLOW_AUTH_CONFIG_PATH; its database URI
# holds the `mlflow` role's password) from the environment (never baked into the image), drop the
# variable, then run the container's command.
set -eu
if [ -n "${MLOPS_MLFLOW_AUTH_INI:-}" ]; then
    config_file="${MLFLOW_AUTH_CONFIG_PATH:?is not set}"
    # Readable by the mlflow user only.
    (umask 077 && printf '%s' "${MLOPS_MLFLOW_AUTH_INI}" > "${config_file}")
fi
unset MLOPS_MLFLOW_AUTH_INI
exec "$@"
