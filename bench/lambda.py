"""Benchmark: the prediction API as a Lambda in the embedded stack's LocalStack (host mode, no Docker).

Prints both endpoints (Function URL, REST API v1) with curl commands, then the latency of ``POST /predict``
through the Function URL:

* **cold**: the first request after a configuration change (LocalStack then starts a new execution
  environment: runtime process start, imports, champion download and load, the request), ``--cold`` times;
* **warm**: ``--warm`` sequential requests on the warm environment (median, p90, p99), and for comparison the
  same through the REST API (v1) and straight to the API process (uvicorn).

All of it is LocalStack's control plane plus the project's local-process executor: the function runs as a
``python3.12 -m awslambdaric`` process on this machine, not in AWS's Amazon Linux image (see ``docs/lambda.md``).

Stack: by default the one ``MLOPS_STACK_*`` names (``make up`` first); ``--isolated`` starts a temporary
stack on free ports without Airflow, trains a quick champion with the ML library (few trials) and
destroys it at the end. The function's configuration is restored afterwards.

    .venv/bin/python bench/lambda.py [--isolated] [--cold 3] [--warm 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from infra import catalog  # noqa: E402
from infra.aws_lambda import local_service, localstack_endpoints  # noqa: E402
from infra.aws_lambda.spec import LAMBDA, function_environment  # noqa: E402
from infra.local import Stack, StackSettings, allocate_ports  # noqa: E402
from ml.settings import MLSettings  # noqa: E402
from ml.spec import get_spec  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summarize(seconds: list[float]) -> dict[str, float]:
    """Median, p90, p99 and mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(percentile(ms, 0.90), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed_posts(url: str, headers: dict[str, str], body: dict[str, Any], n: int) -> list[float]:
    """``n`` sequential POSTs on one keep-alive connection; seconds each (all must answer 200)."""
    out = []
    with httpx.Client(timeout=120) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = client.post(url, json=body, headers=headers)
            out.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"POST {url} -> {response.status_code} {response.text[:300]}")
    return out


def set_environment(lam: Any, env: dict[str, str]) -> None:
    """Give the function ``env`` and wait until the update is done (the next request gets a new environment)."""
    lam.update_function_configuration(FunctionName=LAMBDA.function_name, Environment={"Variables": env})
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=LAMBDA.function_name, WaiterConfig={"Delay": 0.25, "MaxAttempts": 240}
    )


def cold_start(lam: Any, url: dict[str, Any], env: dict[str, str], marker: str, body: dict[str, Any]) -> float:
    """Change the function's environment (a new execution environment), then time the first request."""
    set_environment(lam, {**env, "MLOPS_BENCH_COLD_START": marker})
    return timed_posts(url["predict_url"], url["headers"], body, 1)[0]


def train_quick_champion(stack: Stack, work: Path) -> None:
    """A champion from the ML library's real steps with a small budget (the pipeline without Airflow)."""
    env = (
        os.environ
        | stack.client_env()
        | {
            "MLOPS_N_TRIALS": "4",
            "MLOPS_CV_FOLDS": "3",
            "PYTHONPATH": str(REPO),
        }
    )
    cmd = [sys.executable, "-m", "tests.integration.api.api_stack", "train", "--output", str(work / "train.json")]
    cmd += ["--min-score", "0.5"]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stderr[-3000:]}")


def wait_served(url: str, headers: dict[str, str], timeout: float = 120) -> str:
    """Wait until ``GET <url>/model`` names a version; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(url + "/model", headers=headers, timeout=60)
        if response.status_code == 200:
            return str(response.json()["version"])
        time.sleep(1)
    raise TimeoutError(f"{url} serves no model after {timeout:.0f} s")


def run(stack: Stack, cold_runs: int, warm_n: int) -> dict[str, Any]:
    """Measure; restore the function's configuration afterwards."""
    endpoints = stack.lambda_endpoints()
    if not endpoints:
        raise SystemExit("the stack has no Lambda deployed: is LocalStack on (`python -m infra.local status`)?")
    url, rest = endpoints["function_url"], endpoints["rest_v1"]
    body = get_spec(MLSettings().dataset).example_record()
    key = stack.credentials().api_admin_key
    httpx.post(stack.url(catalog.API, "/model/reload"), headers={"X-API-Key": key}, timeout=60)
    version = wait_served(stack.url(catalog.API), {})
    env = function_environment(stack.credentials(), topo=stack.topology)
    results: dict[str, Any] = {"endpoints": endpoints, "model_version": version}
    lam = localstack_endpoints.aws_client("lambda", stack.url(catalog.LOCALSTACK))
    try:
        colds = [cold_start(lam, url, env, str(i), body) for i in range(cold_runs)]
        served = wait_served(url["base_url"], url["headers"])
        results["cold_start_s"] = [round(c, 3) for c in colds]
        results["cold_start_median_s"] = round(statistics.median(colds), 3)
        results["lambda_version"] = served
        timed_posts(url["predict_url"], url["headers"], body, 10)  # warm-up
        results["warm_function_url"] = summarize(timed_posts(url["predict_url"], url["headers"], body, warm_n))
        timed_posts(rest["predict_url"], rest["headers"], body, 10)
        results["warm_rest_v1"] = summarize(timed_posts(rest["predict_url"], rest["headers"], body, warm_n))
        api = stack.url(catalog.API, "/predict")
        timed_posts(api, {}, body, 10)
        results["warm_process_api"] = summarize(timed_posts(api, {}, body, warm_n))
    finally:
        set_environment(lam, env)  # the stack's own configuration again
    return results


def report(results: dict[str, Any]) -> str:
    """Human-readable figures."""
    url, rest = results["endpoints"]["function_url"], results["endpoints"]["rest_v1"]
    lines = [
        "Endpoints (append the API's paths: /predict, /predict/batch, /model, /ready, /docs):",
        f"  Function URL   {url['url']}",
        f"                 any client: {url['base_url']}/ with 'Host: {url['headers']['Host']}'",
        f"  REST API (v1)  {rest['url']}/",
        f"                 {rest['alt_url']}/",
        f"  curl           {url['curl']}",
        f"                 {rest['curl']}",
        "",
        f"Latency of POST /predict, champion v{results['model_version']} (Lambda served v{results['lambda_version']}):",
        "  Function URL cold start (first request after a config change): "
        f"median {results['cold_start_median_s']:.2f} s over {len(results['cold_start_s'])} "
        f"({', '.join(f'{c:.2f}' for c in results['cold_start_s'])})",
    ]
    for name, key in (
        ("Function URL warm", "warm_function_url"),
        ("REST API v1 warm", "warm_rest_v1"),
        ("API process (uvicorn)", "warm_process_api"),
    ):
        s = results[key]
        lines.append(
            f"  {name:<22} median {s['median_ms']:6.1f} ms, p90 {s['p90_ms']:6.1f} ms, p99 {s['p99_ms']:6.1f} ms"
            f" (n={s['n']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isolated", action="store_true", help="Start (and destroy) a temporary stack.")
    parser.add_argument("--cold", type=int, default=3, help="Cold starts to measure.")
    parser.add_argument("--warm", type=int, default=200, help="Warm requests per endpoint.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)

    root: Path | None = None
    if args.isolated:
        root = Path(tempfile.mkdtemp(prefix="bench-lambda-", dir="/tmp"))
        root.chmod(0o711)  # Postgres runs as another OS user when we are root
        settings = StackSettings(
            state_dir=root / "state", enable_airflow=False, enable_localstack=True, **allocate_ports()
        )
        stack = Stack(settings, out=lambda msg: print(f"[stack] {msg}", flush=True))
    else:
        stack = Stack(StackSettings())
    try:
        if args.isolated:
            timings = stack.up()
            print(f"isolated stack healthy in {timings['total']:.1f} s (LocalStack {timings['localstack']:.1f} s)")
            train_quick_champion(stack, root or Path("."))
        elif catalog.LOCALSTACK not in stack.services() or not stack.is_running():
            raise SystemExit("no running stack with LocalStack: run `make up` first, or use --isolated")
        health = local_service.check(stack.topology)
        if not health.ok:
            raise SystemExit(f"LocalStack is not healthy: {health.detail}")
        results = run(stack, args.cold, args.warm)
        print(report(results))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if root is not None:
            stack.destroy()
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
