#!/bin/sh
# Entrypoint of the Airflow image: write the SimpleAuthManager passwords file from the environment
# (never baked into the image), drop the variable, then run the container's command.
set -eu

if [ -n "${MLOPS_AIRFLOW_PASSWORDS_JSON:-}" ]; then
    passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?is not set}"
    # Readable by the airflow user only.
    (umask 077 && printf '%s' "${MLOPS_AIRFLOW_PASSWORDS_JSON}" > "${passwords_file}")
fi
unset MLOPS_AIRFLOW_PASSWORDS_JSON

exec "$@"
