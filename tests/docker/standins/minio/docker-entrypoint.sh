#!/bin/sh
# Entrypoint of the minio/minio stand-in, same contract as the real image's: the command is run by
# `minio` unless it already starts with `minio` (so `server /data ...` means `minio server /data ...`),
# and `docker run --entrypoint mc IMAGE ...` bypasses it.
set -e
if [ "${1}" != "minio" ]; then
    if [ -n "${1}" ]; then
        set -- minio "$@"
    fi
fi
exec "$@"
