"""Pipeline steps as the DAGs run them: one function per Airflow task, configured from the environment.

Each function reads :class:`ml.settings.MLSettings` (and the S3 settings) from the environment, calls
the library, and returns a small JSON-friendly dict that Airflow passes on as an XCom. The DAG files in
``dags/`` only wire these together, so everything here is testable without Airflow. Heavy libraries are
imported inside the functions to keep DAG parsing fast.
"""

from __future__ import annotations

import re
from typing import Any

from ml.settings import MLSettings


def _context(settings: MLSettings | None = None) -> tuple[Any, MLSettings, Any]:
    from ml.lake import Lake
    from ml.spec import get_spec

    settings = settings or MLSettings()
    lake = Lake.from_env(settings.lake_bucket)
    return get_spec(settings.dataset), settings, lake


def extract_step() -> dict[str, Any]:
    """Land the source in the raw zone; returns the raw manifest."""
    from ml.etl import extract

    spec, _, lake = _context()
    lake.ensure_bucket()
    return extract(spec, lake)


def validate_step(raw_manifest: dict[str, Any]) -> dict[str, Any]:
    """Validate the landed file named by ``raw_manifest``; returns the validation report."""
    from ml.etl import validate
    from ml.etl.extract import raw_prefix

    spec, settings, lake = _context()
    key = f"{raw_prefix(spec, raw_manifest['sha256'])}/manifest.json"
    return validate(spec, lake, settings.max_invalid_fraction, raw_manifest_key=key)


def split_step(report: dict[str, Any]) -> dict[str, Any]:
    """Write the train/test split of the validated rows; returns the split manifest."""
    from ml.etl import split

    spec, settings, lake = _context()
    return split(spec, lake, settings.seed, settings.test_size, report)


def study_name_for(run_id: str, dataset: str) -> str:
    """A stable study name for one Airflow DAG run, so retried tasks find the same study."""
    return f"{dataset}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:100]


def prepare_step(run_id: str, n_trials: int | None = None) -> dict[str, Any]:
    """Create (or find again) the Optuna study and the MLflow parent run for this DAG run."""
    from ml.search import prepare_search

    spec, settings, lake = _context()
    if n_trials:
        settings = settings.model_copy(update={"n_trials": n_trials})
    handle = prepare_search(spec, settings, lake, study_name=study_name_for(run_id, spec.name))
    return handle.to_dict() | {"n_trials": settings.n_trials}


def tune_step(handle: dict[str, Any], worker: int) -> dict[str, Any]:
    """One tuning worker: run trials on the shared study until the search's trial budget is used."""
    from ml.search import SearchHandle, run_worker

    spec, settings, lake = _context()
    settings = settings.model_copy(update={"n_trials": int(handle.get("n_trials", settings.n_trials))})
    fields = {k: handle[k] for k in SearchHandle.__dataclass_fields__}
    return run_worker(SearchHandle(**fields), spec, settings, lake, worker)


def finish_step(handle: dict[str, Any]) -> dict[str, Any]:
    """Refit the best configuration, evaluate it and log the model to the parent run."""
    from ml.search import SearchHandle, finish_search

    spec, settings, lake = _context()
    fields = {k: handle[k] for k in SearchHandle.__dataclass_fields__}
    return finish_search(SearchHandle(**fields), spec, settings, lake)


def gate_step(result: dict[str, Any], handle: dict[str, Any]) -> dict[str, Any]:
    """Register the model as challenger and decide whether it becomes champion."""
    from ml.registry import register_and_gate

    spec, settings, lake = _context()
    return register_and_gate(result, spec, settings, lake, split_manifest=handle["split_manifest"]).to_dict()
