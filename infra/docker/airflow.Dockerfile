# Airflow 3 (LocalExecutor): the `airflow` extra's locked dependencies (Airflow, the Postgres provider and
# the ML libraries), the `ml` package, the DAGs from dags/, and the entrypoint that writes the
# SimpleAuthManager passwords file from the environment at start. Build context: the repository root;
# airflow.Dockerfile.dockerignore sends only the files copied below.
FROM python:3.12.12-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies only (the project itself is not installed, so its metadata and README are not needed).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra airflow --no-install-project

FROM python:3.12.12-slim-bookworm
# Passed by the Pulumi program (infra/components/services.py); these defaults are the same values.
ARG AIRFLOW_HOME=/opt/airflow
ARG AIRFLOW_UID=50000
RUN useradd --system --uid "${AIRFLOW_UID}" --gid 0 --home-dir "${AIRFLOW_HOME}" --create-home airflow \
    && mkdir -p "${AIRFLOW_HOME}/dags" "${AIRFLOW_HOME}/logs" /opt/mlops/bin \
    && chown -R "${AIRFLOW_UID}:0" "${AIRFLOW_HOME}" \
    && chmod -R g=u "${AIRFLOW_HOME}"
COPY --from=build /opt/venv /opt/venv
COPY ml /opt/mlops/src/ml
# Bytecode compiled at build time: the code is not writable by the airflow user.
RUN /opt/venv/bin/python -m compileall -q /opt/mlops/src
COPY --chmod=0755 infra/docker/airflow-entrypoint.sh infra/docker/trigger_training.py /opt/mlops/bin/
COPY --chown=${AIRFLOW_UID}:0 dags/ ${AIRFLOW_HOME}/dags/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/mlops/src \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=${AIRFLOW_HOME}
USER ${AIRFLOW_UID}
WORKDIR ${AIRFLOW_HOME}
EXPOSE 8080
ENTRYPOINT ["/opt/mlops/bin/airflow-entrypoint.sh"]
CMD ["airflow", "api-server", "--port", "8080"]
