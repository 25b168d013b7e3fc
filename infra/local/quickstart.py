"""What ``make up`` does after the services are healthy: train, register and serve every active model, then report.

1. Check the active datasets (``MLOPS_DATASETS``, with the default ``MLOPS_DATASET`` among them) and load
   their specs; a spec that does not load is reported (its DAG is ``broken_spec_<dataset>``).
2. For every dataset whose model has no ``champion`` yet (every one with ``--retrain``), trigger its
   ``etl_<dataset>`` DAG through Airflow's REST API, all at once, and follow each and the
   ``training_<dataset>`` run its Asset schedules, printing task states. Pipelines are independent: a failed
   one does not stop the others.
3. For every champion: ask the API to reload that model (admin key), wait until ``GET /models/<dataset>``
   serves exactly the registry's champion version and run a sample ``POST /models/<dataset>/predict`` with
   ``curl``; then the legacy ``POST /predict`` of the default model (and through the Lambda when LocalStack runs).
4. Print a summary: every URL, one line per model (task; champion version or "no champion" with the
   registry gate's reason; CV and test score in the spec's metric), and the commands that just worked.

A model that the gate kept out is reported, not an error. After the summary, ``make up`` fails
(:class:`PipelineError`) if a DAG run failed or a spec did not load. Running it again is harmless: with
every champion registered and served it only re-checks and reports.
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

from dags.pipeline_ids import pipeline
from infra import catalog
from infra.local.model_report import ModelReport, champion_version, model_report
from infra.local.pipeline import RunResult, print_progress, run_pipelines, wait_for_http
from infra.local.stack import Stack, StackError
from ml.settings import MLSettings
from ml.spec import DatasetSpec, SpecError, get_spec

__all__ = ["PipelineError", "QuickstartResult", "champion_version", "run", "sample_request", "wait_until_served"]


class PipelineError(StackError):
    """The pipelines did not end with every champion served by the API; the message says where to look."""


@dataclass
class QuickstartResult:
    """What ``make up`` achieved, for the summary and for tests."""

    service_seconds: dict[str, float]
    default_dataset: str = ""
    runs: list[RunResult] = field(default_factory=list)
    models: dict[str, ModelReport] = field(default_factory=dict)  # by dataset, in MLOPS_DATASETS order
    spec_errors: dict[str, str] = field(default_factory=dict)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by dataset: the curl and its answer
    champion_version: str | None = None  # the default model's
    champion_served_s: float | None = None
    champion: dict[str, Any] | None = None  # the API's GET /model (the default model): family, metrics...
    prediction: dict[str, Any] | None = None  # the legacy POST /predict of the default model
    lambda_predictions: dict[str, Any] = field(default_factory=dict)

    def failed_runs(self) -> list[RunResult]:
        """The DAG runs of this ``make up`` that did not succeed."""
        return [r for r in self.runs if r.state != "success"]


def _model_path(dataset: str | None, suffix: str = "") -> str:
    """The API's route of one model (``/models/<dataset>``), or of the default model (``/model``)."""
    return (f"/models/{dataset}" if dataset else "/model") + suffix


def _served_model(stack: Stack, dataset: str | None = None) -> dict[str, Any] | None:
    """The API's description of the model it serves, or None while it serves none or does not answer."""
    try:
        response = httpx.get(stack.url(catalog.API, _model_path(dataset)), timeout=10)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def wait_until_served(stack: Stack, version: str, dataset: str | None = None, timeout: float = 120.0) -> float:
    """Ask the API to reload a model (admin key), then wait until it serves ``version``; returns seconds waited.

    ``dataset`` None: the default model (``/model``). A model the API has not discovered yet answers 404
    until its next registry discovery; the wait covers that.
    """
    started = time.monotonic()
    key = stack.credentials().api_admin_key
    last_reload = 0.0

    def served(response: httpx.Response) -> bool:
        nonlocal last_reload
        if response.status_code == 200 and str(response.json().get("version")) == version:
            return True
        if time.monotonic() - last_reload > 5:  # the background poll gets there too; asking saves an interval
            last_reload = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    stack.url(catalog.API, _model_path(dataset, "/reload")), headers={"X-API-Key": key}, timeout=60
                )
        return False

    wait_for_http(stack.url(catalog.API, _model_path(dataset)), served, timeout=timeout)
    return time.monotonic() - started


def sample_request(settings: MLSettings) -> dict[str, Any]:
    """The default dataset's example record: a valid request for the default model."""
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


def load_specs(datasets: list[str]) -> tuple[dict[str, DatasetSpec], dict[str, str]]:
    """The specs of ``datasets`` that load, and the error of each one that does not."""
    specs: dict[str, DatasetSpec] = {}
    errors: dict[str, str] = {}
    for name in datasets:
        try:
            specs[name] = get_spec(name)
        except SpecError as exc:
            errors[name] = str(exc)
    return specs, errors


def _train(
    stack: Stack, specs: dict[str, DatasetSpec], retrain: bool, timeout: float, out: Callable[[str], None]
) -> list[RunResult]:
    """Run the pipelines of the datasets without a champion (all with ``retrain``); returns every DAG run."""
    todo = [d for d, spec in specs.items() if retrain or champion_version(stack, spec.registered_model) is None]
    for dataset in specs.keys() - set(todo):
        out(f"{dataset}: champion registered already (`make up` retrains only with --retrain)")
    if not todo:
        return []
    settings = MLSettings()
    out(f"\nrunning {len(todo)} pipeline(s): " + ", ".join(" -> ".join(pipeline(d)) for d in todo)
        + f" (trial budget {settings.n_trials}, {settings.tuning_workers} tuning workers each)")  # fmt: skip
    pipelines = [(etl, (training,)) for etl, training in map(pipeline, todo)]
    return run_pipelines(stack, pipelines, on_progress=print_progress, timeout=timeout)


def _problems(runs: list[RunResult]) -> dict[str, str]:
    """Why a dataset's pipeline did not reach the gate in this run, by dataset."""
    problems: dict[str, str] = {}
    for dataset in {r.dag_id.split("_", 1)[1] for r in runs}:
        failed = [r for r in runs if r.dag_id in pipeline(dataset) and r.state != "success"]
        if failed:
            problems[dataset] = f"DAG {failed[0].dag_id} {failed[0].state}"
    return problems


def _serve_and_predict(stack: Stack, result: QuickstartResult, specs: dict[str, DatasetSpec]) -> None:
    """Wait until the API serves every champion, then run one sample curl per model and the legacy /predict."""
    for dataset, report in result.models.items():
        if report.champion is None:
            continue
        served = _served_model(stack, dataset)
        if served is None or str(served.get("version")) != report.champion:
            print(f"waiting for the API to serve {dataset} champion v{report.champion} ...", flush=True)
            wait_until_served(stack, report.champion, dataset)
        body = stack.paths.root / f"sample-request-{dataset}.json"
        body.write_text(json.dumps(specs[dataset].example_record(), indent=2))
        command, answer = curl_predict(stack.url(catalog.API, f"/models/{dataset}/predict"), str(body))
        if str(answer["model"]["version"]) != report.champion:
            raise PipelineError(f"the API answered with model {answer['model']}, expected {dataset} v{report.champion}")
        result.predictions[dataset] = {"command": command, "response": answer}

    default = result.models.get(result.default_dataset)
    if default is None or default.champion is None:
        return
    if str((_served_model(stack) or {}).get("version")) != default.champion:
        wait_until_served(stack, default.champion)
    result.champion_version = default.champion
    result.champion = _served_model(stack)
    body = stack.paths.root / f"sample-request-{result.default_dataset}.json"
    command, answer = curl_predict(stack.url(catalog.API, "/predict"), str(body))
    result.prediction = {"command": command, "response": answer}
    for name, endpoint in stack.lambda_endpoints().items():
        url = endpoint["url"].rstrip("/") + "/predict"
        command, answer = curl_predict(url, str(body), endpoint["predict_url"], endpoint.get("headers"))
        result.lambda_predictions[name] = {"command": command, "response": answer}


def run(
    stack: Stack, retrain: bool = False, out: Callable[[str], None] = print, timeout: float = 1200.0
) -> QuickstartResult:
    """Start the stack, train and gate every active model, serve the champions, run sample predictions, report."""
    settings = MLSettings()
    try:
        datasets = catalog.active_datasets(settings)
    except SpecError as exc:
        raise PipelineError(str(exc)) from None
    specs, spec_errors = load_specs(datasets)
    result = QuickstartResult(service_seconds=stack.up(), default_dataset=settings.dataset, spec_errors=spec_errors)
    started = time.monotonic()

    result.runs = _train(stack, specs, retrain, timeout, out)
    problems = _problems(result.runs)
    result.models = {d: model_report(stack, spec, problems.get(d)) for d, spec in specs.items()}
    _serve_and_predict(stack, result, specs)
    result.champion_served_s = time.monotonic() - started

    out(summary(stack, result))
    failures = [f"DAG run {r.dag_id} {r.run_id}: {r.state}" for r in result.failed_runs()]
    failures += [f"spec {name}: {error}" for name, error in spec_errors.items()]
    if failures:
        raise PipelineError(
            "not every pipeline ran: " + "; ".join(failures) + f". See the task logs in the Airflow UI "
            f"({stack.url(catalog.AIRFLOW_API)}) or under {stack.paths.root / 'airflow' / 'logs'}; fix a spec "
            "with `python -m ml validate <dataset>`"
        )
    return result


def summary(stack: Stack, result: QuickstartResult) -> str:
    """The closing summary of ``make up``."""
    topo = stack.topology
    served = sum(1 for m in result.models.values() if m.champion)
    lines = [
        "",
        "=" * 100,
        f"The platform is up; {served} of {len(result.models)} model(s) have a champion, served.",
        "",
    ]
    rows = [
        ("Airflow UI / REST", topo.url(catalog.AIRFLOW_API), f"user {catalog.AIRFLOW_ADMIN_USER}"),
        ("MLflow", topo.url(catalog.MLFLOW), "experiments and model registry"),
        ("S3 endpoint", topo.url(catalog.S3), f"buckets {', '.join(catalog.BUCKETS)}"),
        ("API docs", topo.url(catalog.API, "/docs"), "one section per model, from its dataset spec"),
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
    if total is not None and result.champion_served_s is not None:
        lines.append(f"  Services healthy in {total:.1f} s; models trained and served after "
                     f"{result.champion_served_s:.1f} s more.")  # fmt: skip
    for run in result.runs:
        lines.append(f"  DAG run {run.dag_id}: {run.state} in {run.seconds:.1f} s")
    lines += ["", '  Models (make gate ARGS="<dataset>" re-runs a model\'s registry gate):']
    lines += [f"    {m.line()}" for m in result.models.values()]
    lines += [f"    {name:<16} spec error: {error}" for name, error in result.spec_errors.items()]
    if result.predictions:
        lines += ["", "  Sample predictions (just ran):"]
    for done in result.predictions.values():
        lines += [f"    {done['command']}", f"    -> {_answer(done['response'])}"]
    if result.prediction:
        done = result.prediction
        lines += ["", f"  The default model ({result.default_dataset}) on the unnamed routes (just ran):"]
        lines += [f"    {done['command']}", f"    -> {_answer(done['response'])}"]
    elif result.default_dataset in result.models:
        lines += ["", f"  The default model ({result.default_dataset}) has no champion: POST /predict answers 503."]
    for name, done in result.lambda_predictions.items():
        lines += [
            f"  Through the Lambda ({name}, just ran):",
            f"    {done['command']}",
            f"    -> {_answer(done['response'])}",
        ]
    lines.append("=" * 100)
    return "\n".join(lines)


def _answer(answer: dict[str, Any]) -> str:
    """One prediction answer in a few words: label and probability, or value, and the model that answered."""
    model = answer.get("model") or {}
    if "label" in answer:
        said = f"{answer['label']}" + (
            f" (p={answer['probability']:.3f})" if answer.get("probability") is not None else ""
        )
    else:
        value = answer.get("value", answer.get("prediction"))
        said = f"{value:.4g}" if isinstance(value, float) else str(value)
        if answer.get("unit"):
            said += f" {answer['unit']}"
    return f"{said} from {model.get('name')} v{model.get('version')} @{model.get('alias')}"
