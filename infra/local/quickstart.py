"""What ``make up`` does after the services are healthy: train, register and serve a champion, then report.

1. If the registry has no ``champion`` yet (or ``--retrain`` is given), trigger ``mlops_etl`` through
   Airflow's REST API and follow it and the ``mlops_training`` run it schedules (its Asset), printing task
   states as they change.
2. Ask the API to reload (admin key) and wait until it serves exactly the registry's champion version.
3. Run a sample prediction with ``curl`` (and through the Lambda endpoints when LocalStack runs).
4. Print a summary: every URL, where the credentials are, and the commands that just worked.

Running it again is harmless: with a champion already registered and served it only re-checks and
reports.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from infra import catalog
from infra.local.pipeline import RunResult, print_progress, run_pipeline, wait_for_http
from infra.local.stack import Stack, StackError
from ml.settings import MLSettings
from ml.spec import get_spec

ETL_DAG, TRAINING_DAG = "mlops_etl", "mlops_training"


class PipelineError(StackError):
    """The pipeline did not end with a champion served by the API; the message says where to look."""


@dataclass
class QuickstartResult:
    """What ``make up`` achieved, for the summary and for tests."""

    service_seconds: dict[str, float]
    runs: list[RunResult] = field(default_factory=list)
    champion_version: str | None = None
    champion_served_s: float | None = None
    champion: dict[str, Any] | None = None  # the API's GET /model: family, metrics, data version...
    prediction: dict[str, Any] | None = None
    lambda_predictions: dict[str, Any] = field(default_factory=dict)


def champion_version(stack: Stack, model_name: str) -> str | None:
    """The registry's current champion version (MLflow REST), or None when there is none yet."""
    response = httpx.get(
        stack.url(catalog.MLFLOW, "/api/2.0/mlflow/registered-models/alias"),
        params={"name": model_name, "alias": "champion"},
        auth=stack.mlflow_login(),
        timeout=10,
    )
    if response.status_code == 200:
        return str(response.json()["model_version"]["version"])
    if response.status_code in (400, 404):  # RESOURCE_DOES_NOT_EXIST / INVALID_PARAMETER_VALUE
        return None
    response.raise_for_status()
    return None


def _served_model(stack: Stack) -> dict[str, Any] | None:
    """The API's ``GET /model`` (the model it serves), or None while it serves none or does not answer."""
    try:
        response = httpx.get(stack.url(catalog.API, "/model"), timeout=10)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def wait_until_served(stack: Stack, version: str, timeout: float = 120.0) -> float:
    """Ask the API to reload now (admin key), then wait until it serves ``version``; returns seconds waited."""
    started = time.monotonic()
    key = stack.credentials().api_admin_key
    # The background poll gets there too; asking now saves up to one poll interval. The wait is the check.
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(stack.url(catalog.API, "/model/reload"), headers={"X-API-Key": key}, timeout=60)
    wait_for_http(
        stack.url(catalog.API, "/model"),
        lambda r: r.status_code == 200 and str(r.json().get("version")) == version,
        timeout=timeout,
    )
    return time.monotonic() - started


def sample_request(settings: MLSettings) -> dict[str, Any]:
    """The dataset spec's example record: a valid request for the champion."""
    return get_spec(settings.dataset).example_record()


def curl_predict(
    url: str, body_file: str, fallback_url: str | None = None, headers: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Run (and return) a ``curl`` POST of ``body_file`` to ``url``.

    Without curl, httpx posts to ``fallback_url`` with ``headers`` instead (Python does not resolve
    ``*.localhost`` names, which curl does, so a Function URL is reached through the gateway and its Host).
    """
    args = ["curl", "-sS", "--fail-with-body", "-X", "POST", url, "-H", "Content-Type: application/json"]
    args += ["-d", f"@{body_file}"]
    command = shlex.join(args)
    if shutil.which("curl"):
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise PipelineError(f"sample prediction failed: {command}\n{done.stdout}{done.stderr}")
        return command, json.loads(done.stdout)
    with open(body_file, "rb") as fh:
        response = httpx.post(
            fallback_url or url, content=fh.read(), headers={"Content-Type": "application/json", **(headers or {})}
        )
    response.raise_for_status()
    return command, response.json()


def run(
    stack: Stack, retrain: bool = False, out: Callable[[str], None] = print, timeout: float = 1200.0
) -> QuickstartResult:
    """Start the stack, make sure a champion is trained and served, run sample predictions, print a summary."""
    settings = MLSettings()
    model_name = str(settings.model_name)
    result = QuickstartResult(service_seconds=stack.up())
    started = time.monotonic()

    version = champion_version(stack, model_name)
    if version is None or retrain:
        out(f"\nrunning the pipeline: {ETL_DAG} -> {TRAINING_DAG} (trial budget {settings.n_trials}, "
            f"{settings.tuning_workers} tuning workers)")  # fmt: skip
        result.runs = run_pipeline(stack, ETL_DAG, (TRAINING_DAG,), on_progress=print_progress, timeout=timeout)
        failed = [r for r in result.runs if r.state != "success"]
        if failed or len(result.runs) < 2:
            run = failed[0] if failed else result.runs[-1]
            raise PipelineError(
                f"DAG run {run.dag_id} / {run.run_id} ended {run.state}; see its task logs in the Airflow UI "
                f"({stack.url(catalog.AIRFLOW_API)}) or under {stack.paths.root / 'airflow' / 'logs'}"
            )
        version = champion_version(stack, model_name)
        if version is None:
            raise PipelineError(
                f"training finished but {model_name} has no champion: the first model must reach "
                f"MLOPS_MIN_CHAMPION_SCORE={settings.min_champion_score}; see the gate's reason in the tags of "
                f"the newest version in MLflow ({stack.url(catalog.MLFLOW)})"
            )
    else:
        out(f"\nchampion v{version} of {model_name} is registered already (`make up` retrains only with --retrain)")

    served = _served_model(stack)
    if served is None or str(served.get("version")) != version:
        out(f"waiting for the API to serve champion v{version} ...")
        wait_until_served(stack, version)
        served = _served_model(stack)
    result.champion_version = version
    result.champion_served_s = time.monotonic() - started
    result.champion = served

    body = stack.paths.root / "sample-request.json"
    body.write_text(json.dumps(sample_request(settings), indent=2))
    command, answer = curl_predict(stack.url(catalog.API, "/predict"), str(body))
    if str(answer["model"]["version"]) != version:
        raise PipelineError(f"the API answered with model {answer['model']}, expected champion v{version}")
    result.prediction = {"command": command, "response": answer}

    for name, endpoint in stack.lambda_endpoints().items():
        url = endpoint["url"].rstrip("/") + "/predict"
        command, answer = curl_predict(url, str(body), endpoint["predict_url"], endpoint.get("headers"))
        result.lambda_predictions[name] = {"command": command, "response": answer}

    out(summary(stack, result))
    return result


def champion_line(model: dict[str, Any]) -> str:
    """One line on the served champion from the API's ``GET /model``: family, CV score, test metrics."""
    metrics = model.get("metrics") or {}
    test = metrics.get("test") or {}
    parts = [f"{model.get('name')} v{model.get('version')} ({model.get('family')})"]
    if metrics.get("cv_score") is not None:
        parts.append(f"CV {metrics.get('metric')} {float(metrics['cv_score']):.3f}")
    shown = ", ".join(f"{k} {float(v):.3f}" for k, v in test.items() if k in ("f1", "roc_auc", "accuracy"))
    if shown:
        parts.append(f"test {shown}")
    if model.get("data_version"):
        parts.append(f"data {str(model['data_version'])[:12]}")
    return "; ".join(parts)


def summary(stack: Stack, result: QuickstartResult) -> str:
    """The closing summary of ``make up``."""
    topo = stack.topology
    lines = ["", "=" * 100, "The platform is up; the champion is trained, registered and served.", ""]
    rows = [
        ("Airflow UI / REST", topo.url(catalog.AIRFLOW_API), f"user {catalog.AIRFLOW_ADMIN_USER}"),
        ("MLflow", topo.url(catalog.MLFLOW), "experiments and model registry"),
        ("S3 endpoint", topo.url(catalog.S3), f"buckets {', '.join(catalog.BUCKETS)}"),
        ("API docs", topo.url(catalog.API, "/docs"), "generated from the champion's dataset spec"),
        ("Postgres", f"127.0.0.1:{topo.port(catalog.POSTGRES)}", f"user {catalog.POSTGRES_USER}"),
    ]
    if result.lambda_predictions:
        rows.append(("LocalStack", topo.url(catalog.LOCALSTACK), "the API as a Lambda"))
    for name, url, note in rows:
        lines.append(f"  {name:<18} {url:<40} {note}")
    lines += [
        "",
        f"  Credentials: {stack.paths.credentials} (mode 0600); client variables: `python -m infra.local env`",
    ]
    total = result.service_seconds.get("total")
    if total is not None:
        lines.append(f"  Services healthy in {total:.1f} s; champion v{result.champion_version} served after "
                     f"{result.champion_served_s:.1f} s more.")  # fmt: skip
    for run in result.runs:
        lines.append(f"  DAG run {run.dag_id}: {run.state} in {run.seconds:.1f} s")
    if result.champion:
        lines.append(f"  Champion: {champion_line(result.champion)}")
    if result.prediction:
        answer = result.prediction["response"]
        lines += [
            "",
            "  Sample prediction (just ran):",
            f"    {result.prediction['command']}",
            f"    -> {answer['label']} (p={answer['probability']:.3f}) from {answer['model']['name']} "
            f"v{answer['model']['version']} @{answer['model']['alias']}",
        ]
    for name, done in result.lambda_predictions.items():
        answer = done["response"]
        lines += [
            f"  Through the Lambda ({name}, just ran):",
            f"    {done['command']}",
            f"    -> {answer['label']} (p={answer['probability']:.3f}) v{answer['model']['version']}",
        ]
    lines.append("=" * 100)
    return "\n".join(lines)
