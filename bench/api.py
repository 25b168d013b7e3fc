"""Benchmark of the prediction service against ``mlflow models serve`` and a minimal FastAPI endpoint.

One run, one champion model, three servers (each one uvicorn worker, started the same way):

* **ours**: ``uvicorn api.main:app --workers 1 --no-access-log`` (the catalog's command; JSON request log on);
* **ours, plain**: the same with ``MLOPS_API_FAST_PREPROCESSING=false`` (scikit-learn's whole pipeline runs
  for every request, as in the minimal endpoint): shows what the verified NumPy preprocessing buys;
* **mlflow serve**: ``mlflow models serve -m models:/<name>@champion --env-manager local --workers 1``, the
  baseline a user would reach for (``dataframe_split`` requests, class only);
* **minimal**: a FastAPI endpoint that validates the record with a plain pydantic model and calls
  ``predict_proba`` on a NumPy array (the floor: no metrics, no logs, no model management).

Measured: single-record latency (p50, p99) and throughput at concurrency 1, 8 and 64; 1,000-record batch
latency; and the Lambda package (``python -m infra.aws_lambda.package_build``) run by ``awslambdaric`` behind the
Runtime API emulator: cold start (runtime process start to first response, model load included) and warm latency.

How: each server is pinned to one CPU (the idler one when the run starts) and the load generator to
another (``os.sched_setaffinity``), so the client does not eat the server's CPU. The load generator is a
separate process: N asyncio tasks (uvloop), each holding one keep-alive HTTP/1.1 connection and sending
the same request back to back (a closed loop); a request costs it a few microseconds, far less than an
HTTP client library. Each point: warm-up, then a
fixed duration; latency is measured from the request's write to the last byte of its response. All three
servers get ``OMP_NUM_THREADS=1`` (ours sets it by default) so the model's native code behaves the same.

Provisioning: moto S3 + a real MLflow server (SQLite) + a champion trained by the ML library's pipeline,
unless ``MLOPS_BENCH_TRACKING_URI`` names an MLflow server (then ``MLOPS_BENCH_MODEL_NAME``, default
``breast_cancer_classifier``, and the S3/AWS variables of the environment are used).

Usage: ``python bench/api.py [--duration 5] [--concurrency 1,8,64] [--skip-lambda] [--skip-models] [--json out.json]``

Last, it runs ``bench/api_models.py`` (unless ``--skip-models``): three champions side by side (breast cancer,
wine, diabetes) against the one-model service in the same run, single-record and 1,000-record latency per
model as ratios (it reuses this file's load generator and CPU placement; also runnable on its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and "api" would be this file, not the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from ml.contracts import ModelVersionTags  # noqa: E402  (light: pydantic only)
from ml.settings import MLSettings  # noqa: E402  (light: pydantic only)
from tests.support.ports import free_port  # noqa: E402  (these three: the standard library only)
from tests.support.processes import stop_process  # noqa: E402
from tests.support.waiting import wait_http  # noqa: E402

CPUS = {"server": 0, "client": 1}  # chosen at start: the server gets the idler CPU (see choose_cpus)
THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------------------------
# Load generator (runs in its own process: ``python bench/api.py _load ...``)
# ---------------------------------------------------------------------------------------------------------
async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _connection(port: int, request: bytes, start: float, stop: float, out: list[float], bad: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            sent = time.perf_counter()
            if sent >= stop:
                return
            writer.write(request)
            status = await _read_response(reader)
            done = time.perf_counter()
            if sent >= start:
                out.append(done - sent)
                if status >= 300:
                    bad.append(status)
    finally:
        writer.close()


async def _load(port: int, path: str, body: bytes, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    bad: list[int] = []
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + duration
    await asyncio.gather(*(_connection(port, request, start, stop, latencies, bad) for _ in range(concurrency)))
    return summarize(latencies, duration) | {"concurrency": concurrency, "errors": len(bad)}


def summarize(latencies: list[float], duration: float | None = None) -> dict[str, Any]:
    """Count, throughput, p50/p90/p99 in milliseconds."""
    values = sorted(latencies)
    n = len(values)
    if not n:
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p90_ms": None, "p99_ms": None}

    def pct(q: float) -> float:
        return round(values[min(n - 1, int(q * n))] * 1000, 3)

    return {
        "requests": n,
        "rps": round(n / duration, 1) if duration else None,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def run_load(port: int, path: str, body: bytes, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """Run the load generator in a separate process pinned to the client CPU; returns its summary."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        handle.write(body)
    try:
        cmd = [sys.executable, __file__, "_load", "--port", str(port), "--path", path, "--body", handle.name]
        cmd += ["--concurrency", str(concurrency), "--duration", str(duration), "--warmup", str(warmup)]
        cmd += ["--cpu", str(CPUS["client"])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + warmup + 120)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.unlink(handle.name)


def _pin(cpu: int) -> Callable[[], None] | None:
    if cpu < 0 or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _cpu_times() -> list[tuple[int, int]]:
    out = []
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:]]
                out.append((sum(values), values[3] + values[4]))  # total, idle + iowait
    return out


def choose_cpus(pin: bool) -> dict[str, Any]:
    """Give the server the CPU that was idler over the last second (others may be busy), the client another."""
    if not pin or (os.cpu_count() or 1) < 2 or not os.path.exists("/proc/stat"):
        CPUS.update(server=-1, client=-1)
        return {"pinned": False}
    before = _cpu_times()
    time.sleep(1.0)
    after = _cpu_times()
    busy = [1 - (ai - bi) / max(at - bt, 1) for (bt, bi), (at, ai) in zip(before, after, strict=True)]
    order = sorted(range(len(busy)), key=lambda i: busy[i])
    CPUS.update(server=order[0], client=order[1])
    return {"pinned": True, "busy_before": [round(b, 2) for b in busy]} | CPUS


# ---------------------------------------------------------------------------------------------------------
# The minimal endpoint (``python bench/api.py _minimal --model-dir D --port P``)
# ---------------------------------------------------------------------------------------------------------
def minimal_app(model_dir: Path) -> Any:
    """FastAPI + a plain pydantic model + ``predict_proba`` on a NumPy array: the floor."""
    import numpy as np
    import skops.io
    import yaml
    from fastapi import FastAPI
    from pydantic import create_model

    meta = yaml.safe_load((model_dir / "MLmodel").read_text())["metadata"]
    names = [f["name"] for f in meta["dataset_spec"]["features"]]
    data = (model_dir / "model.skops").read_bytes()
    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    record_type: Any = create_model("Record", **{name: (float, ...) for name in names})
    app = FastAPI()

    async def predict(record: Any) -> dict[str, Any]:
        proba = model.predict_proba(np.array([[getattr(record, n) for n in names]]))[0]
        best = int(proba.argmax())
        return {"class": best, "probability": float(proba[best])}

    predict.__annotations__["record"] = record_type  # a class built at run time: the JSON body
    app.post("/predict")(predict)
    return app


# ---------------------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------------------
class Server:
    """A server process pinned to the server CPU."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, health: str, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow runs `uvicorn`
        full_env = {**os.environ, **env, **THREADS_ENV, "PYTHONPATH": str(REPO), "PATH": path}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pin(CPUS["server"])
            )
        wait_http(f"http://127.0.0.1:{port}{health}", 180, self.proc, log, interval=0.3)

    def stop(self) -> None:
        """Terminate the server (and wait)."""
        stop_process(self.proc, 20)


def start_servers(env: dict[str, str], model_name: str, model_dir: Path, logs: Path) -> dict[str, Server]:
    """Our API, mlflow models serve and the minimal endpoint, each on a free port."""
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--workers", "1", "--no-access-log"]
    servers: dict[str, Server] = {}
    port = free_port()
    from infra.catalog import API_ALLOCATOR_ENV  # as the stacks run it

    servers["ours"] = Server(
        "ours", [*uvicorn, "--port", str(port), "api.main:app"],
        env | API_ALLOCATOR_ENV | {"MLOPS_MODEL_NAME": model_name}, port,
        "/ready", logs / "ours.log",
    )  # fmt: skip
    port = free_port()
    plain_env = env | {"MLOPS_MODEL_NAME": model_name, "MLOPS_API_FAST_PREPROCESSING": "false"}
    servers["ours, plain"] = Server(
        "ours, plain", [*uvicorn, "--port", str(port), "api.main:app"], plain_env, port, "/ready",
        logs / "ours-plain.log",
    )  # fmt: skip
    port = free_port()
    mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model_name}@champion"]
    mlflow_cmd += ["--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
    servers["mlflow serve"] = Server("mlflow serve", mlflow_cmd, env, port, "/ping", logs / "mlflow-serve.log")
    port = free_port()
    minimal_cmd = [sys.executable, __file__, "_minimal", "--model-dir", str(model_dir), "--port", str(port)]
    servers["minimal"] = Server("minimal", minimal_cmd, env, port, "/docs", logs / "minimal.log")
    return servers


# ---------------------------------------------------------------------------------------------------------
# Lambda
# ---------------------------------------------------------------------------------------------------------
def bench_lambda(env: dict[str, str], model_name: str, work: Path, invocations: int, cold_runs: int) -> dict[str, Any]:
    """Build the zip, then measure cold starts and warm invocations through awslambdaric + the emulator."""
    from infra.aws_lambda import package_build
    from infra.aws_lambda.localstack_venvs import ensure_lambda_runtime
    from infra.aws_lambda.runtime_api import LambdaProcess
    from tests.datasets import breast_cancer_record
    from tests.unit.api.lambda_events import event

    zip_path, zipped, unzipped = package_build.build(work / "lambda-build")
    code = work / "lambda-task"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(code)
    envs = Path(os.environ.get("MLOPS_LOCALSTACK_ENVS") or REPO / ".tools" / "localstack-envs")
    python = ensure_lambda_runtime(envs, "python3.12")
    fn_env = env | {"MLOPS_MODEL_NAME": model_name}
    request = event("function_url", "POST", "/predict", breast_cancer_record())
    colds: list[float] = []
    warm: list[float] = []
    for run in range(cold_runs):
        fn = LambdaProcess(code, "api.lambda_handler.handler", python=python, env=fn_env, timeout=30,
                           init_timeout=120, log_path=work / f"lambda-{run}.log")  # fmt: skip
        started = time.perf_counter()
        fn.start()
        try:
            first = fn.invoke(request)
            colds.append(time.perf_counter() - started)
            if first.is_error or first.json().get("statusCode") != 200:
                raise RuntimeError(f"Lambda invocation failed: {first.payload[:500]!r}\n{fn.logs()[-2000:]}")
            if run == cold_runs - 1:
                for _ in range(invocations):
                    t0 = time.perf_counter()
                    fn.invoke(request)
                    warm.append(time.perf_counter() - t0)
        finally:
            fn.stop()
    return {
        "zip_mib": round(zipped / 2**20, 1),
        "unzipped_mib": round(unzipped / 2**20, 1),
        "cold_start_s": [round(c, 3) for c in colds],
        "cold_start_median_s": round(statistics.median(colds), 3),
        "warm": summarize(warm),
    }


# ---------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------
def provision(work: Path, n_trials: int) -> tuple[dict[str, str], str, Any]:
    """The MLflow server and champion to serve: given by the environment, or started here."""
    if os.environ.get("MLOPS_BENCH_TRACKING_URI"):
        env = {"MLFLOW_TRACKING_URI": os.environ["MLOPS_BENCH_TRACKING_URI"], "MLFLOW_DISABLE_TELEMETRY": "true"}
        for key in ("AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if key in os.environ:
                env[key] = os.environ[key]
        return env, os.environ.get("MLOPS_BENCH_MODEL_NAME", "breast_cancer_classifier"), None
    from tests.integration.api.api_stack import train_champion
    from tests.support.mlflow_server import start_registry_stack

    stack = start_registry_stack(work / "registry")
    name = "bench_breast_cancer"
    decision = train_champion(stack, name, n_trials=n_trials)["decision"]
    print(f"champion: {name} v{decision['version']} ({decision['reason']})", flush=True)
    return stack.env, name, stack


def download_model(env: dict[str, str], name: str, target: Path) -> dict[str, Any]:
    """MLmodel and model.skops of the champion (for the minimal endpoint), with our REST client."""
    from api.registry_client import MlflowRegistry
    from api.settings import ApiSettings

    settings = ApiSettings(
        tracking_uri=env["MLFLOW_TRACKING_URI"], model_name=name, s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3")
    )
    client = MlflowRegistry(settings)
    ref = client.resolve()
    target.mkdir(parents=True, exist_ok=True)
    for filename in ("MLmodel", "model.skops"):
        (target / filename).write_bytes(client.fetch(ref, filename))
    family = ModelVersionTags.from_tags(ref.tags).family
    return {"version": ref.version, "family": family, "artifact_uri": ref.artifact_uri}


def bodies(model_dir: Path) -> dict[str, bytes]:
    """Request bodies: one record for ours/minimal, the same as a dataframe_split for MLflow, and batches."""
    import yaml

    spec = yaml.safe_load((model_dir / "MLmodel").read_text())["metadata"]["dataset_spec"]
    record = {f["name"]: f["example"] for f in spec["features"]}
    columns = list(record)
    batch = [record] * 1000
    return {
        "ours": json.dumps(record).encode(),
        "ours, plain": json.dumps(record).encode(),
        "minimal": json.dumps(record).encode(),
        "mlflow serve": json.dumps({"dataframe_split": {"columns": columns, "data": [list(record.values())]}}).encode(),
        "ours batch": json.dumps({"records": batch}).encode(),
        "mlflow serve batch": json.dumps(
            {"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in batch]}}
        ).encode(),
    }


PATHS = {"ours": "/predict", "ours, plain": "/predict", "minimal": "/predict", "mlflow serve": "/invocations"}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(results: dict[str, Any]) -> str:
    """The result table with ratios and the targets."""
    lines = ["", f"Single record (closed loop, one uvicorn worker; CPU placement {results['cpus_used']}):", ""]
    lines.append(f"{'server':<14}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs mlflow':>11}{'vs minimal':>12}")
    single = results["single"]
    for conc in results["concurrency"]:
        for name in single:
            r = single[name][str(conc)]
            vs_mlflow = _ratio(r["rps"], single["mlflow serve"][str(conc)]["rps"]) if name != "mlflow serve" else ""
            vs_minimal = _ratio(r["rps"], single["minimal"][str(conc)]["rps"]) if name != "minimal" else ""
            lines.append(
                f"{name:<14}{conc:>5}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{vs_mlflow:>11}{vs_minimal:>12}"
            )
        lines.append("")
    lines.append("Batch of 1,000 records (concurrency 1):")
    for name, r in results["batch"].items():
        lines.append(
            f"  {name:<14} p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  ({r['requests']} requests, "
            f"{r['errors']} errors)"
        )
    if "lambda" in results:
        lam = results["lambda"]
        lines += [
            "",
            f"Lambda zip: {lam['zip_mib']} MiB zipped, {lam['unzipped_mib']} MiB unzipped",
            f"Lambda cold start (runtime start to first response, model load included): median "
            f"{lam['cold_start_median_s']:.2f} s over {lam['cold_start_s']}",
            f"Lambda warm invocation (through the emulator): p50 {lam['warm']['p50_ms']:.1f} ms, "
            f"p99 {lam['warm']['p99_ms']:.1f} ms",
        ]
    lines += ["", "Targets:"]
    for text, ok in targets(results):
        lines.append(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[tuple[str, bool]]:
    """The issue's targets, each with whether this run met it (any failed request fails the run)."""
    single = results["single"]
    failed = sum(r["errors"] for runs in single.values() for r in runs.values())
    failed += sum(r["errors"] for r in results["batch"].values())
    out = [(f"no failed requests ({failed})", failed == 0)]
    for conc in results["concurrency"]:
        ours, mlflow, minimal = (single[n][str(conc)]["rps"] for n in ("ours", "mlflow serve", "minimal"))
        out.append((f"c={conc}: ours >= 10x mlflow serve ({_ratio(ours, mlflow)})", ours >= 10 * mlflow))
        out.append((f"c={conc}: ours >= 70 % of minimal ({_ratio(ours, minimal)})", ours >= 0.7 * minimal))
    p50 = single["ours"][str(results["concurrency"][0])]["p50_ms"]
    out.append((f"single-record p50 <= 2 ms ({p50:.2f} ms)", p50 <= 2.0))
    batch = results["batch"]["ours"]["p50_ms"]
    out.append((f"1,000-record batch p50 <= 30 ms ({batch:.1f} ms)", batch <= 30.0))
    if "lambda" in results:
        cold = results["lambda"]["cold_start_median_s"]
        out.append((f"Lambda cold start <= 2 s ({cold:.2f} s)", cold <= 2.0))
    return out


def main_bench(args: argparse.Namespace) -> int:
    """Provision, start the servers, measure everything, print the table."""
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-api-"))
    stack = None
    servers: dict[str, Server] = {}
    concurrency = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, Any] = {"concurrency": concurrency, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    try:
        env, name, stack = provision(work, args.n_trials)
        results["cpus_used"] = choose_cpus(not args.no_pin)
        print(f"CPU placement: {results['cpus_used']}", flush=True)
        model_dir = work / "model"
        results["model"] = download_model(env, name, model_dir) | {"name": name}
        print(f"model: {results['model']}", flush=True)
        body = bodies(model_dir)
        servers = start_servers(env, name, model_dir, work)
        results["single"] = {n: {} for n in servers}
        for conc in concurrency:
            for server_name, server in servers.items():
                r = run_load(server.port, PATHS[server_name], body[server_name], conc, args.duration, args.warmup)
                results["single"][server_name][str(conc)] = r
                print(f"{server_name:<14} c={conc:<3} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}", flush=True)  # fmt: skip
        results["batch"] = {}
        for server_name, path in (("ours", "/predict/batch"), ("mlflow serve", "/invocations")):
            server = servers[server_name]
            r = run_load(server.port, path, body[f"{server_name} batch"], 1, args.duration, 1)
            results["batch"][server_name] = r
            print(f"{server_name:<14} batch 1000: p50 {r['p50_ms']:.1f} ms  errors {r['errors']}", flush=True)
        for server in servers.values():
            server.stop()
        servers = {}
        if not args.skip_lambda:
            results["lambda"] = bench_lambda(env, name, work, args.lambda_invocations, args.cold_runs)
        results["load_after"] = os.getloadavg()
        print(report(results))
        if not args.skip_models:
            models = [sys.executable, str(Path(__file__).with_name("api_models.py")), "--duration", str(args.duration)]
            subprocess.run(models, check=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    finally:
        for server in servers.values():
            server.stop()
        if stack is not None:
            stack.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")


def main(argv: list[str] | None = None) -> int:
    """Command line (the ``_load`` and ``_minimal`` sub-commands are the benchmark's own child processes)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        p = argparse.ArgumentParser()
        for flag in ("--port", "--concurrency"):
            p.add_argument(flag, type=int, required=True)
        for flag in ("--duration", "--warmup"):
            p.add_argument(flag, type=float, required=True)
        p.add_argument("--path", required=True)
        p.add_argument("--body", required=True)
        p.add_argument("--cpu", type=int, default=-1)
        a = p.parse_args(argv[1:])
        pin = _pin(a.cpu)
        if pin:
            pin()
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        body = Path(a.body).read_bytes()
        print(json.dumps(asyncio.run(_load(a.port, a.path, body, a.concurrency, a.duration, a.warmup))))
        return 0
    if argv[:1] == ["_minimal"]:
        import uvicorn

        p = argparse.ArgumentParser()
        p.add_argument("--model-dir", type=Path, required=True)
        p.add_argument("--port", type=int, required=True)
        a = p.parse_args(argv[1:])
        uvicorn.run(
            minimal_app(a.model_dir), host="127.0.0.1", port=a.port, workers=1, access_log=False, log_level="warning"
        )
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per point (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per point (default 1)")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated concurrency levels")
    parser.add_argument(
        "--n-trials",
        type=int,
        default=MLSettings().n_trials,
        help="Optuna trials for the champion (default: the platform's trial budget, so the champion is the one "
        "`make up` would serve)",
    )
    parser.add_argument("--skip-lambda", action="store_true", help="leave out the Lambda measurements")
    parser.add_argument("--skip-models", action="store_true", help="leave out the many-models comparison")
    parser.add_argument("--cold-runs", type=int, default=3, help="Lambda cold starts to measure (default 3)")
    parser.add_argument("--lambda-invocations", type=int, default=200, help="warm Lambda invocations (default 200)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client to CPUs")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return main_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
