"""Pipeline steps as the DAGs run them: one function per Airflow task, configured from the environment.

Each function reads :class:`ml.settings.MLSettings` (and the S3 settings) from the environment, calls
the library, and takes and returns the typed contracts of :mod:`ml.contracts`. The DAG files in ``dags/``
only wire these together and serialise at the Airflow boundary: a task returns
``contract.model_dump(mode="json")`` as its XCom, and the next one reads it with ``Contract.model_validate``.
Everything here is testable without Airflow. Heavy libraries are imported inside the functions to keep
DAG parsing fast.
"""

from __future__ import annotations

import re
from typing import Any

from ml.contracts import (
    GateDecision,
    RawManifest,
    SearchPlan,
    SearchResult,
    SplitManifest,
    ValidationReport,
    WorkerReport,
)
from ml.settings import MLSettings


def _context(dataset: str, settings: MLSettings | None = None) -> tuple[Any, MLSettings, Any]:
    from ml.lake import Lake
    from ml.spec import get_spec

    settings = settings or MLSettings()
    lake = Lake.from_env(settings.lake_bucket)
    return get_spec(dataset), settings, lake


def extract_step(dataset: str) -> RawManifest:
    """Land the source of ``dataset`` in the raw zone; returns the raw manifest."""
    from ml.etl import extract

    spec, _, lake = _context(dataset)
    lake.ensure_bucket()
    return extract(spec, lake)


def validate_step(dataset: str, raw_manifest: RawManifest) -> ValidationReport:
    """Validate the landed file named by ``raw_manifest``; returns the validation report."""
    from ml.etl import validate
    from ml.etl.extract import raw_manifest_key

    spec, settings, lake = _context(dataset)
    key = raw_manifest_key(spec, raw_manifest.sha256)
    return validate(spec, lake, settings.max_invalid_fraction, raw_manifest_key=key)


def split_step(dataset: str, report: ValidationReport) -> SplitManifest:
    """Write the train/test split of the validated rows; returns the split manifest."""
    from ml.etl import split

    spec, settings, lake = _context(dataset)
    return split(spec, lake, settings.seed, settings.test_size, report)


def study_name_for(run_id: str, dataset: str) -> str:
    """A stable study name for one Airflow DAG run, so retried tasks find the same study."""
    return f"{dataset}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:100]


def prepare_step(dataset: str, run_id: str, n_trials: int | None = None) -> SearchPlan:
    """Create (or find again) the Optuna study and the MLflow parent run for this DAG run."""
    from ml.search import prepare_search

    spec, settings, lake = _context(dataset)
    if n_trials:
        settings = settings.model_copy(update={"n_trials": n_trials})
    handle = prepare_search(spec, settings, lake, study_name=study_name_for(run_id, spec.name))
    return SearchPlan(**handle.model_dump(), n_trials=settings.n_trials)


def tune_step(dataset: str, plan: SearchPlan, worker: int) -> WorkerReport:
    """One tuning worker: run trials on the shared study until the search's trial budget is used."""
    from ml.search import run_worker

    spec, settings, lake = _context(dataset)
    settings = settings.model_copy(update={"n_trials": plan.n_trials})
    return run_worker(plan, spec, settings, lake, worker)


def finish_step(dataset: str, plan: SearchPlan) -> SearchResult:
    """Refit the best configuration, evaluate it and log the model to the parent run."""
    from ml.search import finish_search

    spec, settings, lake = _context(dataset)
    return finish_search(plan, spec, settings, lake)


def gate_step(dataset: str, result: SearchResult, plan: SearchPlan) -> GateDecision:
    """Register the model as challenger and decide whether it becomes champion."""
    from ml.registry import register_and_gate

    spec, settings, lake = _context(dataset)
    return register_and_gate(result, spec, settings, lake, split_manifest=plan.split_manifest)
