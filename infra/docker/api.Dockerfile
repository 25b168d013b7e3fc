# Prediction API (FastAPI; gunicorn master + uvicorn worker, api/server.py): the `api` extra's locked dependencies, then only the code it runs (the
# `api` package, and of `ml` the dataset specs and the contracts). No Airflow, no MLflow. Build context: the repository root;
# api.Dockerfile.dockerignore sends only the files copied below, so e.g. a README edit rebuilds nothing.
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
RUN uv sync --frozen --no-dev --extra api --no-install-project

FROM python:3.12.12-slim-bookworm
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app
COPY --from=build /opt/venv /opt/venv
COPY api /opt/mlops/src/api
COPY ml/__init__.py ml/spec.py ml/tasks.py ml/contracts.py /opt/mlops/src/ml/
COPY ml/datasets /opt/mlops/src/ml/datasets
# Bytecode compiled at build time: the code is not writable by the service user.
RUN /opt/venv/bin/python -m compileall -q /opt/mlops/src
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/mlops/src \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/app
EXPOSE 8800
# Same command as infra/catalog.py commands(Topology.docker())["api"] (a test checks it).
CMD ["gunicorn", "api.main:app", "--config", "python:api.server", "--bind", "0.0.0.0:8800"]
