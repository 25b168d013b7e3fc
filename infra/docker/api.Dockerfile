# Prediction API (FastAPI + uvicorn): the project with the `api` extra only, installed from uv.lock.
# No Airflow, no MLflow. Build context: the repository root (see api.Dockerfile.dockerignore).
FROM python:3.12.12-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra api --no-install-project
COPY ml ./ml
COPY api ./api
COPY infra ./infra
RUN uv sync --frozen --no-dev --extra api --no-editable

FROM python:3.12.12-slim-bookworm
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/app
EXPOSE 8800
# Same command as infra/catalog.py commands(Topology.docker())["api"] (a test checks it).
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8800", "--workers", "1", "--no-access-log"]
