"""Benchmark: the prediction API under hostile requests, within its limits (10 MiB bodies, 1,000 records).

One run, one champion, one uvicorn worker pinned to one CPU (the idler one, as ``bench/api.py`` does); the
clients run in a separate process pinned to the other CPU.

1. **Baseline** (no bad traffic): ``GET /health`` and a good ``POST /predict``, each a closed loop of one
   connection; the server's memory (RSS); the server CPU of a good 1,000-record batch.
2. **Catalogue** of bad requests, all within the limits: for each, the answer (status and error type), the
   wall time and the server's CPU per request (from ``/proc/<pid>/stat`` over repeated sends). The one with
   the most CPU is *the slowest bad request*.
3. **Attack**: 4 connections send the slowest bad request back to back while one connection measures
   ``/health`` and another a good ``/predict``: their p50/p99 against the baseline, and the server's peak RSS
   (sampled every 20 ms).
4. **After**: RSS 2 s and 10 s after the attack, against the baseline: does the memory come back?

Targets (printed next to the figures): the bad request costs at most 50 ms of CPU, ``/health`` p99 under
20 ms during the attack, memory grows by less than 50 MB and comes back. No figure is asserted.

Provisioning as ``bench/api.py``: moto S3, an MLflow server and a champion trained by the ML library (4 trials
by default), or ``MLOPS_BENCH_TRACKING_URI``/``MLOPS_BENCH_MODEL_NAME``. ``--app-root DIR`` serves the API from
another checkout (e.g. ``git archive HEAD api | tar -x -C /tmp/old`` for a before/after comparison).

Usage: ``python bench/api_abuse.py [--attack-seconds 10] [--probe-seconds 3] [--app-root DIR] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))


def _bench_api() -> Any:
    """``bench/api.py`` as a module (its provisioning, CPU placement and server helpers)."""
    spec = importlib.util.spec_from_file_location("bench_api", REPO / "bench" / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TARGETS = {"bad_cpu_ms": 50.0, "health_p99_ms": 20.0, "rss_growth_mb": 50.0}
BODY_LIMIT = 10 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------------------
def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def bad_requests(record: dict[str, Any]) -> dict[str, bytes]:
    """The catalogue of bad batch bodies (each within the 10 MiB body limit and 1,000 records)."""
    fields = list(record)
    from api.request_body import EXTRA_KEYS, MAX_KEY_CHARS

    long_keys = {f"{'k' * 120}_{i:03d}": 1.0 for i in range(64)}
    short_keys = {f"unknown_{i:02d}": 1.0 for i in range(64)}
    # the most a record may carry and still be parsed (EXTRA_KEYS unknown keys of MAX_KEY_CHARS characters)
    most_keys = {f"{'k' * (MAX_KEY_CHARS - 4)}_{i:03d}": 1.0 for i in range(EXTRA_KEYS)}
    bodies = {
        "issue: 600 records x 1,000 unknown keys": _dumps({"records": [{f"key{i:03d}": 1 for i in range(1000)}] * 600}),
        "10 MiB of nested arrays": b'{"records": [' + b"[" * (BODY_LIMIT - 64) + b"]}",
        "10 MiB of empty objects": b'{"records": [' + b"{}," * ((BODY_LIMIT - 64) // 3) + b"{}]}",
        "1,000 records x 64 unknown 124-char keys": _dumps({"records": [record | long_keys] * 1000}),
        "1,000 records x 64 unknown short keys": _dumps({"records": [record | short_keys] * 1000}),
        f"1,000 records x {EXTRA_KEYS} unknown {MAX_KEY_CHARS}-char keys (the most still parsed)": _dumps(
            {"records": [record | most_keys] * 1000}
        ),
        "1,000 records, all values strings": _dumps({"records": [{k: "x" for k in fields}] * 1000}),
        "999 good records and a bad last one": _dumps({"records": [record] * 999 + [record | {fields[0]: "x"}]}),
        "one 10 MB string value": _dumps({"records": [record | {fields[0]: "x" * (BODY_LIMIT - 4096)}]}),
        "2,400 numbers of 4,300 digits": b'{"records": [{"x": [' + b",".join([b"7" * 4300] * 2400) + b"]}]}",
        "230 numbers of 4,300 digits (< 1 MiB)": b'{"records": [{"x": [' + b",".join([b"7" * 4300] * 230) + b"]}]}",
        "nesting 10,000 levels deep": b'{"records": [{"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}]}",
        "1,000 records of NaN": _dumps({"records": [dict.fromkeys(fields, 0.5)] * 1000}).replace(b"0.5", b"NaN"),
        "not JSON: text/plain": _dumps({"records": [record] * 1000}),
    }
    return {name: body for name, body in bodies.items() if len(body) <= BODY_LIMIT}


def content_type_of(name: str) -> str:
    """The Content-Type a catalogue entry is sent with."""
    return "text/plain" if "text/plain" in name else "application/json"


# ---------------------------------------------------------------------------------------------------------
# Client (raw HTTP/1.1 over keep-alive connections, like bench/api.py's load generator)
# ---------------------------------------------------------------------------------------------------------
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


def request_bytes(
    port: int, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
) -> bytes:
    """One HTTP/1.1 request."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body or method == "POST":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _loop(port: int, request: bytes, stop: float, out: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    try:
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, _ = await _read_response(reader)
            out.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _scenario(port: int, loops: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    stop = time.perf_counter() + seconds
    results: dict[str, Any] = {}
    tasks = []
    for spec in loops:
        body = Path(spec["body"]).read_bytes() if spec["body"] else b""
        request = request_bytes(port, spec["method"], spec["path"], body, spec.get("content_type", "application/json"))
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        results[spec["name"]] = (latencies, statuses)
        tasks += [_loop(port, request, stop, latencies, statuses) for _ in range(spec.get("connections", 1))]
    await asyncio.gather(*tasks)
    return {name: summarize(lat) | {"statuses": st} for name, (lat, st) in results.items()}


def summarize(latencies: list[float]) -> dict[str, Any]:
    """Count and p50/p99 in milliseconds."""
    values = sorted(latencies)
    n = len(values)
    if not n:
        return {"requests": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}

    def pct(q: float) -> float:
        return round(values[min(n - 1, int(q * n))] * 1000, 2)

    return {"requests": n, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(values[-1] * 1000, 2)}


def run_clients(port: int, loops: list[dict[str, Any]], seconds: float, cpu: int) -> dict[str, Any]:
    """Run the loops in a child process pinned to ``cpu``; returns their summaries."""
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"port": port, "loops": loops, "seconds": seconds, "cpu": cpu}, handle)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "_clients", handle.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 300,
        )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.unlink(handle.name)


# ---------------------------------------------------------------------------------------------------------
# Server-side figures
# ---------------------------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process (all its threads, live and ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    """Resident memory of the process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_request(port: int, method: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes, float]:
    """Send one request on a new connection; returns status, body and wall seconds."""

    async def go() -> tuple[int, bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        try:
            started = time.perf_counter()
            writer.write(request_bytes(port, method, path, body, content_type))
            await writer.drain()
            status, answer = await _read_response(reader)
            return status, answer, time.perf_counter() - started
        finally:
            writer.close()

    return asyncio.run(go())


def measure_request(pid: int, port: int, body: bytes, content_type: str, budget_s: float) -> dict[str, Any]:
    """Send one body repeatedly (up to ``budget_s`` or 200 times): answer, wall time and CPU per request."""
    status, answer, first = one_request(port, "POST", "/predict/batch", body, content_type)
    try:
        detail = json.loads(answer)
        kind = detail["detail"][0]["type"] if detail.get("detail") else "ok"
    except (ValueError, KeyError, TypeError, IndexError):
        kind = "?"
    walls, cpu0, started = [first], cpu_seconds(pid), time.monotonic()
    while time.monotonic() - started < budget_s and len(walls) < 200:
        walls.append(one_request(port, "POST", "/predict/batch", body, content_type)[2])
    cpu = (cpu_seconds(pid) - cpu0) / max(1, len(walls) - 1) if len(walls) > 1 else float("nan")
    walls.sort()
    return {
        "bytes": len(body),
        "status": status,
        "type": kind,
        "sends": len(walls),
        "wall_p50_ms": round(walls[len(walls) // 2] * 1000, 1),
        "cpu_ms": round(cpu * 1000, 1),
    }


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------
def main_bench(args: argparse.Namespace) -> int:
    """Provision, start the API, measure, print."""
    bench_api = _bench_api()
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-abuse-"))
    stack = None
    server = None
    results: dict[str, Any] = {"app_root": str(args.app_root)}
    try:
        env, name, stack = bench_api.provision(work, args.n_trials)
        results["cpus"] = bench_api.choose_cpus(True)
        client_cpu = bench_api.CPUS["client"]
        from infra.catalog import API_ALLOCATOR_ENV  # as the stacks run it
        from tests.support.ports import free_port

        port = free_port()
        server_env = (
            env
            | API_ALLOCATOR_ENV
            | {
                "MLOPS_MODEL_NAME": name,
                "MLOPS_API_REQUEST_LOG": "false",
                "PYTHONPATH": str(args.app_root),
            }
        )
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--no-access-log", "--app-dir", str(args.app_root), "api.main:app"]  # fmt: skip
        server = bench_api.Server("ours", cmd, server_env, port, "/ready", work / "api.log")
        pid = server.proc.pid
        model_dir = work / "model"
        bench_api.download_model(env, name, model_dir)
        import yaml

        spec = yaml.safe_load((model_dir / "MLmodel").read_text())["metadata"]["dataset_spec"]
        record = {f["name"]: f["example"] for f in spec["features"]}
        bodies_dir = work / "bodies"
        bodies_dir.mkdir()
        good_path = bodies_dir / "good.json"
        good_path.write_bytes(_dumps(record))

        # 1. baseline
        probes = [
            {"name": "health", "method": "GET", "path": "/health", "body": None},
            {"name": "predict", "method": "POST", "path": "/predict", "body": str(good_path)},
        ]
        run_clients(port, probes, 1.0, client_cpu)  # warm-up
        baseline = run_clients(port, probes, args.probe_seconds, client_cpu)
        rss_base = rss_mb(pid)
        good_batch = _dumps({"records": [record] * 1000})
        results["baseline"] = baseline | {
            "rss_mb": round(rss_base, 1),
            "good_batch": measure_request(pid, port, good_batch, "application/json", args.request_budget),
        }
        print(f"baseline: {json.dumps(results['baseline'])}", flush=True)

        # 2. catalogue
        catalogue: dict[str, Any] = {}
        bodies = bad_requests(record)
        if args.only:
            bodies = {k: v for k, v in bodies.items() if any(o.lower() in k.lower() for o in args.only)}
        for title, body in bodies.items():
            catalogue[title] = measure_request(pid, port, body, content_type_of(title), args.request_budget)
            print(f"{title:<45} {json.dumps(catalogue[title])}", flush=True)
        results["catalogue"] = catalogue
        worst = max(catalogue, key=lambda k: (catalogue[k]["cpu_ms"], catalogue[k]["wall_p50_ms"]))
        results["worst"] = worst

        # 3. attack: 4 connections send the worst request while /health and /predict are probed
        worst_path = bodies_dir / "worst.json"
        worst_path.write_bytes(bodies[worst])
        rss_before = rss_mb(pid)
        attack = [
            *probes,
            {"name": "attack", "method": "POST", "path": "/predict/batch", "body": str(worst_path),
             "connections": args.attackers, "content_type": content_type_of(worst)},
        ]  # fmt: skip
        cpu0 = cpu_seconds(pid)
        with RssSampler(pid) as sampler:
            under = run_clients(port, attack, args.attack_seconds, client_cpu)
        attack_cpu = cpu_seconds(pid) - cpu0
        time.sleep(2)
        rss_2s = rss_mb(pid)
        time.sleep(8)
        rss_10s = rss_mb(pid)
        results["attack"] = under | {
            "rss_before_mb": round(rss_before, 1),
            "rss_peak_mb": round(sampler.peak, 1),
            "rss_after_2s_mb": round(rss_2s, 1),
            "rss_after_10s_mb": round(rss_10s, 1),
            "server_cpu_s": round(attack_cpu, 2),
        }
        print(report(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    finally:
        if server is not None:
            server.stop()
        if stack is not None:
            stack.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.1f}x" if value and base else "-"


def report(results: dict[str, Any]) -> str:
    """The figures, ratios against the same run's baseline, and the targets."""
    base, attack, catalogue = results["baseline"], results["attack"], results["catalogue"]
    good = base["good_batch"]
    lines = ["", f"Served from {results['app_root']}; CPU placement {results['cpus']}", ""]
    lines.append("Bad requests (POST /predict/batch, sequential; CPU = server CPU per request):")
    lines.append(f"  {'request':<45}{'MB':>6}{'status':>7}  {'type':<16}{'wall ms':>9}{'CPU ms':>8}{'vs good':>9}")
    for title, r in catalogue.items():
        lines.append(
            f"  {title:<45}{r['bytes'] / 1e6:>6.1f}{r['status']:>7}  {r['type']:<16}{r['wall_p50_ms']:>9.1f}"
            f"{r['cpu_ms']:>8.1f}{_ratio(r['cpu_ms'], good['cpu_ms']):>9}"
        )
    lines.append(
        f"  {'(good batch of 1,000 records, for comparison)':<45}{good['bytes'] / 1e6:>6.1f}{good['status']:>7}  "
        f"{'':<16}{good['wall_p50_ms']:>9.1f}{good['cpu_ms']:>8.1f}"
    )
    worst = catalogue[results["worst"]]
    n_attackers = attack["attack"]["requests"]
    lines += [
        "",
        f"Slowest bad request: {results['worst']} ({worst['cpu_ms']:.1f} ms CPU, {worst['wall_p50_ms']:.1f} ms wall)",
        f"Attack: 4 connections sending it back to back ({n_attackers} sent, {attack['attack']['statuses']}), "
        f"server CPU {attack['server_cpu_s']} s:",
        f"  {'probe':<10}{'baseline p50':>14}{'p99':>9}{'attack p50':>12}{'p99':>9}{'max':>9}{'p99 ratio':>11}",
    ]
    for probe in ("health", "predict"):
        b, a = base[probe], attack[probe]
        lines.append(
            f"  {probe:<10}{b['p50_ms']:>14.2f}{b['p99_ms']:>9.2f}{a['p50_ms']:>12.2f}{a['p99_ms']:>9.2f}"
            f"{a['max_ms']:>9.2f}{_ratio(a['p99_ms'], b['p99_ms']):>11}   ({a['requests']} requests, {a['statuses']})"
        )
    growth = attack["rss_peak_mb"] - attack["rss_before_mb"]
    after = attack["rss_after_10s_mb"] - attack["rss_before_mb"]
    lines += [
        f"Memory (RSS): baseline {base['rss_mb']:.0f} MB, before the attack {attack['rss_before_mb']:.0f} MB, peak "
        f"{attack['rss_peak_mb']:.0f} MB (+{growth:.0f} MB), 2 s after {attack['rss_after_2s_mb']:.0f} MB, 10 s after "
        f"{attack['rss_after_10s_mb']:.0f} MB ({after:+.0f} MB)",
        "",
        "Targets:",
    ]
    checks = [
        (f"slowest bad request <= {TARGETS['bad_cpu_ms']:.0f} ms CPU ({worst['cpu_ms']:.1f} ms)",
         worst["cpu_ms"] <= TARGETS["bad_cpu_ms"]),
        (f"/health p99 under attack < {TARGETS['health_p99_ms']:.0f} ms ({attack['health']['p99_ms']:.2f} ms)",
         attack["health"]["p99_ms"] < TARGETS["health_p99_ms"]),
        (f"memory grows < {TARGETS['rss_growth_mb']:.0f} MB (+{growth:.0f} MB)", growth < TARGETS["rss_growth_mb"]),
        (f"memory comes back (10 s after: {after:+.0f} MB, within 10 MB of before)", after < 10),
    ]  # fmt: skip
    lines += [f"  [{'ok' if ok else 'MISSED'}] {text}" for text, ok in checks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line (``_clients`` is the benchmark's own client process)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_clients"]:
        config = json.loads(Path(argv[1]).read_text())
        if config["cpu"] >= 0 and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {config["cpu"]})
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        print(json.dumps(asyncio.run(_scenario(config["port"], config["loops"], config["seconds"]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--attack-seconds", type=float, default=10.0, help="length of the attack (default 10)")
    parser.add_argument("--probe-seconds", type=float, default=3.0, help="length of the baseline (default 3)")
    parser.add_argument("--request-budget", type=float, default=1.5, help="seconds of repeats per catalogue entry")
    parser.add_argument("--attackers", type=int, default=4, help="connections sending the bad request (default 4)")
    parser.add_argument("--n-trials", type=int, default=4, help="Optuna trials for the champion (default 4)")
    parser.add_argument("--app-root", type=Path, default=REPO, help="checkout whose api/ is served (default: this)")
    parser.add_argument("--only", action="append", help="only catalogue entries containing this text (repeatable)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return main_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
