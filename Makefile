# One entry point for people and CI. Every target creates or updates .venv from uv.lock first.
# Requirements: Python >= 3.11 and make. uv is bootstrapped with pip into .tools/ when it is absent.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m infra.local
# Never let uv download a Python (no internet here): use an installed interpreter.
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install time: this environment sets PYTHONDONTWRITEBYTECODE, so without this
# every process would recompile scikit-learn, MLflow and Airflow on each start.
export UV_COMPILE_BYTECODE := 1

.PHONY: help venv test test-unit test-integration lint format up down destroy status logs lambda-zip bench clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced ## Create or update .venv from uv.lock

test: venv ## Run unit and integration tests (integration tests start their own isolated stack)
	$(PY) -m pytest

test-unit: venv ## Run the fast unit tests only
	$(PY) -m pytest -m unit

test-integration: venv ## Run the integration tests only
	$(PY) -m pytest -m integration

lint: venv ## ruff check and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

up: venv ## Start the embedded stack, train, register and serve the champion
	$(STACK) up

down: venv ## Stop the stack, keep all data
	$(STACK) down

destroy: venv ## Stop the stack and delete all of its data
	$(STACK) destroy

status: venv ## Health of every service (JSON: make status ARGS=--json)
	$(STACK) status $(ARGS)

logs: venv ## Service logs (make logs ARGS=mlflow)
	$(STACK) logs $(ARGS)

lambda-zip: venv ## Build the API's Lambda deployment zip if missing or stale (build/lambda/api-lambda.zip)
	$(PY) -m infra.localstack.lambda_zip

bench: venv ## Run all benchmarks (they print figures)
	$(PY) bench/tuning.py
	$(PY) bench/api.py
	$(PY) bench/stack.py

clean: ## Remove the virtualenv and caches (not the stack's data)
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
