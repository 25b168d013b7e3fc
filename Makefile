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

.PHONY: help venv test test-unit test-integration test-docker lint format docs up down destroy status logs gate lambda-zip bench \
	clean pulumi-preview pulumi-up pulumi-destroy

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)
	@echo "uv $(UV_VERSION) installed into .tools/bin, which is not on your PATH. Pulumi's uv toolchain"
	@echo "(Pulumi.yaml) runs uv from PATH: use make pulumi-preview/pulumi-up/pulumi-destroy, or"
	@echo "  export PATH=$(CURDIR)/.tools/bin:\$$PATH"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced ## Create or update .venv from uv.lock

test: venv ## Run unit and integration tests (integration tests start their own isolated stack)
	$(PY) -m pytest

test-docker: venv ## Run the Docker tier: the Pulumi program's containers on a real engine (starts one as root)
	$(PY) -m pytest -m docker tests/docker

test-unit: venv ## Run the fast unit tests only
	$(PY) -m pytest -m unit

test-integration: venv ## Run the integration tests only
	$(PY) -m pytest -m integration

lint: venv ## ruff check and format check, then mypy (strict on ml/ and api/; settings in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

docs: venv ## Regenerate docs/configuration-reference.md from the settings classes
	$(PY) -m infra.config_reference

up: venv ## Start the embedded stack; train, register and serve a champion per active dataset (MLOPS_DATASETS)
	$(STACK) up $(ARGS)

down: venv ## Stop the stack, keep all data
	$(STACK) down

destroy: venv ## Stop the stack and delete all of its data
	$(STACK) destroy

status: venv ## Health of every service (JSON: make status ARGS=--json)
	$(STACK) status $(ARGS)

logs: venv ## Service logs (make logs ARGS=mlflow)
	$(STACK) logs $(ARGS)

gate: venv ## Re-run a model's registry gate on the running stack (make gate ARGS="wine [--version 3]")
	@test -n "$(ARGS)" || { echo 'usage: make gate ARGS="<dataset> [--version N]"'; exit 2; }
	$(STACK) gate $(ARGS)

lambda-zip: venv ## Build the API's Lambda deployment zip if missing or stale (build/lambda/api-lambda.zip)
	$(PY) -m infra.aws_lambda.package_cache

# Pulumi runs the program with its uv toolchain (Pulumi.yaml), which needs `uv` on PATH: these targets put
# the uv that make uses there (.tools/bin when it was bootstrapped). They need the Pulumi CLI.
PULUMI_PATH := $(abspath $(dir $(UV))):$(PATH)
PULUMI_STACK ?= dev

pulumi-preview: ## pulumi preview of the Docker stack (needs the Pulumi CLI; STACK: PULUMI_STACK=dev)
pulumi-up: ## pulumi up: the Docker stack plus the API as a Lambda in LocalStack (builds the Lambda zip first)
pulumi-destroy: ## pulumi destroy: everything pulumi up created (built images stay)
pulumi-preview pulumi-up pulumi-destroy: venv lambda-zip
	@command -v pulumi >/dev/null 2>&1 || { echo "the Pulumi CLI is not installed: https://www.pulumi.com/docs/iac/download-install/"; exit 127; }
	PATH="$(PULUMI_PATH)" pulumi $(subst pulumi-,,$@) --stack $(PULUMI_STACK) $(ARGS)

bench: venv ## Run all benchmarks (they print figures)
	$(PY) bench/tuning.py
	$(PY) bench/api.py
	$(PY) bench/stack.py

clean: ## Remove the virtualenv and caches (not the stack's data)
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache .mypy_cache
