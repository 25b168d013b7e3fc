"""Benchmark: does serving many models slow any of them? One model (today's service) vs three side by side.

One run, two servers (each one uvicorn worker, ``api.main:app``, pinned to the idler CPU; the load generator,
:mod:`bench/api.py`'s, to another):

* **single**: the service as it was before the model fleet (commit ``BASELINE``, checked out with ``git archive``
  into the work directory), serving the breast cancer champion on ``POST /predict``;
* **fleet**: this checkout, serving three champions side by side: breast cancer (binary, logistic regression),
  wine (multi-class, logistic regression, 3 classes) and diabetes (regression, ridge), on
  ``POST /models/{name}/predict`` and ``/predict/batch`` (breast cancer also on the legacy ``/predict``).

The models are tiny but real (scikit-learn's data sets, the ML library's pipeline shape) and reach both servers
through the champion cache with MLflow down (``MLFLOW_TRACKING_URI`` names a closed port): the start the
service must survive, and no MLflow server competes for the CPUs. Measured per model: single-record latency
(closed loop, concurrency 1: p50, p99, req/s) and the 1,000-record batch (p50), and each as a ratio to the
single-model service's breast cancer figures of the same run (target: the fleet's breast cancer within 10 %).

Usage: ``python bench/api_models.py [--duration 5] [--no-pin] [--json out.json]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port  # noqa: E402  (these three: the standard library only)
from tests.support.processes import stop_process  # noqa: E402
from tests.support.waiting import wait_http  # noqa: E402

BASELINE = "072c0dc"  # the last commit serving one model
_spec = importlib.util.spec_from_file_location("bench_api", REPO / "bench" / "api.py")
assert _spec is not None and _spec.loader is not None
bench_api: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_api)
MODELS = {"breast_cancer": "breast_cancer_classifier", "wine": "wine_classifier", "diabetes": "diabetes_regressor"}


def train_models(root: Path) -> dict[str, Path]:
    """The three champions' model directories (as MLflow saves them)."""
    from sklearn.linear_model import LogisticRegression

    from tests.datasets import breast_cancer_frame, save_model
    from tests.unit.api.task_models import save_task_models

    spec, frame = breast_cancer_frame()
    dirs = save_task_models(root)
    return {
        "breast_cancer": save_model(root / "breast_cancer", spec, frame, LogisticRegression(max_iter=2000)),
        "wine": dirs["wine"],
        "diabetes": dirs["diabetes"],
    }


def write_cache(cache_dir: Path, tracking_uri: str, dirs: dict[str, Path]) -> None:
    """Put each model into the champion cache as the API writes it after loading a champion."""
    from api.champion_cache import build_cache
    from api.registry_client import ModelRef

    for dataset, directory in dirs.items():
        name = MODELS[dataset]
        ref = ModelRef(name, "1", "champion", "models:/m-bench", directory.as_uri(), model_id="m-bench")
        files = {f: (directory / f).read_bytes() for f in ("MLmodel", "model.skops")}
        cache = build_cache(tracking_uri, name, "champion", cache_dir, None, None, 2.0, publish=False)
        cache.save(ref, files, time.time(), f"bench-{dataset}", tracking_uri)


def records() -> dict[str, dict[str, Any]]:
    """One valid record per model: its spec's example (integers as JSON integers)."""
    from tests.datasets import breast_cancer_record
    from tests.unit.api.task_models import diabetes_record, wine_record

    return {"breast_cancer": breast_cancer_record(), "wine": wine_record(), "diabetes": diabetes_record()}


class ApiProcess:
    """One uvicorn worker serving ``api.main:app`` from ``cwd`` (this checkout or the baseline), pinned."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        from infra.catalog import API_ALLOCATOR_ENV  # as the stacks run it

        self.port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        full_env = {**os.environ, **env, **API_ALLOCATOR_ENV, **bench_api.THREADS_ENV, "PYTHONPATH": str(cwd)}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--no-access-log", "api.main:app"], env=full_env, cwd=cwd, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=bench_api._pin(bench_api.CPUS["server"]),
            )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.port}/ready", 180, self.proc, log, interval=0.3)

    def stop(self) -> None:
        """Terminate the server (and wait)."""
        stop_process(self.proc, 20)


def measure(server: ApiProcess, path: str, record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Single-record (concurrency 1) and 1,000-record batch figures of one route."""
    single = bench_api.run_load(server.port, path, json.dumps(record).encode(), 1, args.duration, args.warmup)
    batch_path = path + "/batch"
    body = json.dumps({"records": [record] * 1000}).encode()
    batch = bench_api.run_load(server.port, batch_path, body, 1, args.duration, 1)
    return {"single": single, "batch": batch}


def report(results: dict[str, Any]) -> str:
    """The table: per model and route, latency and its ratio to the single-model service."""
    servers = results["servers"]
    base = servers["single-model service"]["breast_cancer /predict"]
    lines = ["", "Single record (c=1) and 1,000-record batch, one uvicorn worker each:", ""]
    lines.append(f"{'server / model, route':<66}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'vs 1':>7}"
                 f"{'batch p50':>11}{'vs 1':>7}")  # fmt: skip
    for server, routes in servers.items():
        for route, r in routes.items():
            s, b = r["single"], r["batch"]
            lines.append(
                f"{server + ': ' + route:<66}{s['rps']:>8.0f}{s['p50_ms']:>8.3f}{s['p99_ms']:>8.3f}"
                f"{s['p50_ms'] / base['single']['p50_ms']:>6.2f}x{b['p50_ms']:>9.2f}ms"
                f"{b['p50_ms'] / base['batch']['p50_ms']:>6.2f}x"
            )
    ours = servers["three-model service"]["breast_cancer /models/breast_cancer/predict"]
    ratio = ours["single"]["p50_ms"] / base["single"]["p50_ms"]
    batch_ratio = ours["batch"]["p50_ms"] / base["batch"]["p50_ms"]
    errors = sum(r[k]["errors"] for routes in servers.values() for r in routes.values() for k in r)
    lines += [
        "",
        f"[{'ok' if errors == 0 else 'MISSED'}] no failed requests ({errors})",
        f"[{'ok' if ratio <= 1.10 else 'MISSED'}] breast cancer single record, fleet vs one model: {ratio:.2f}x "
        "(<= 1.10)",
        f"[{'ok' if batch_ratio <= 1.10 else 'MISSED'}] breast cancer batch, fleet vs one model: {batch_ratio:.2f}x "
        "(<= 1.10)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Train, cache, start both servers one after the other, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per point (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per point (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client to CPUs")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-models-"))
    try:
        dirs = train_models(work / "models")
        tracking_uri = f"http://127.0.0.1:{free_port()}"  # nothing listens: MLflow is down
        write_cache(work / "cache", tracking_uri, dirs)
        baseline = work / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "archive", BASELINE, "api", "ml"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLOPS_API_CACHE_DIR": str(work / "cache"),
               "MLOPS_API_POLL_INTERVAL_S": "3600", "MLOPS_API_RETRY_INTERVAL_S": "3600",
               "MLOPS_API_REQUEST_LOG": "true"}  # fmt: skip
        results: dict[str, Any] = {"cpus_used": bench_api.choose_cpus(not args.no_pin), "servers": {}}
        body = records()
        server = ApiProcess(baseline, env, work / "single.log")
        try:
            results["servers"]["single-model service"] = {
                "breast_cancer /predict": measure(server, "/predict", body["breast_cancer"], args)
            }
        finally:
            server.stop()
        server = ApiProcess(REPO, env, work / "fleet.log")
        try:
            fleet: dict[str, Any] = {"breast_cancer /predict": measure(server, "/predict", body["breast_cancer"], args)}
            for dataset in MODELS:
                path = f"/models/{dataset}/predict"
                fleet[f"{dataset} {path}"] = measure(server, path, body[dataset], args)
            results["servers"]["three-model service"] = fleet
        finally:
            server.stop()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        print(report(results))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
