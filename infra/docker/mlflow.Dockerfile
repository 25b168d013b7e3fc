# MLflow tracking server (its basic-auth app): mlflow[auth] + psycopg2-binary + boto3, at the versions locked in
# uv.lock, the entrypoint that writes the auth config file from the environment at start, and
# infra/mlflow_users.py (the Pulumi program's `mlflow-users` job). Build context: the repository root (see
# mlflow.Dockerfile.dockerignore: only the lock and the two files copied below).
FROM python:3.12.12-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock ./
# The locked set becomes a constraints file: the server's packages and all their dependencies are
# installed at exactly the versions of uv.lock (mlflow 3.17.2 today) without the rest of the project.
RUN uv export --frozen --all-extras --no-dev --no-hashes --no-emit-project --output-file /tmp/constraints.txt \
    && uv venv --python /usr/local/bin/python3.12 /opt/venv \
    && uv pip install --python /opt/venv/bin/python --constraint /tmp/constraints.txt "mlflow[auth]" psycopg2-binary boto3

FROM python:3.12.12-slim-bookworm
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /home/mlflow --create-home mlflow
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 infra/docker/mlflow-entrypoint.sh infra/mlflow_users.py /opt/mlops/bin/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/mlflow
EXPOSE 5001
ENTRYPOINT ["/opt/mlops/bin/mlflow-entrypoint.sh"]
# Configured by the environment (infra/catalog.py mlflow_server_env) and the auth config file the entrypoint
# writes: no secret on the command line. Same command as infra/catalog.py commands()["mlflow"] (a test checks it).
CMD ["mlflow", "server", "--app-name", "basic-auth"]
