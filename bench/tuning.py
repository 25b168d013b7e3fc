"""Benchmark: the Optuna search with and without MLflow child-run logging, measured in the same run.

Runs the real search (``ml.search.run_search``) on the worked example twice on fresh studies: once
without logging (the baseline) and once with a child run per trial against a real MLflow server, and
prints wall time, trials per second and the ratio. ``--workers`` runs several processes on one study.

Without ``MLFLOW_TRACKING_URI`` / ``AWS_ENDPOINT_URL_S3`` in the environment it starts its own MLflow
server (SQLite backend) and moto S3. ``--storage`` selects the Optuna storage (default: a temporary
SQLite file; pass the stack's Postgres URL to measure what the DAG uses).

    .venv/bin/python bench/tuning.py --trials 250 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log

from tests.support.mlflow_server import start_mlflow_server  # noqa: E402
from tests.support.moto_s3 import start_moto_s3  # noqa: E402

REFERENCE = {"logged_s": 37.5, "bare_s": 17.8}  # the course's reference search, 250 trials, this machine
TARGET_LOGGED_S, TARGET_RATIO = 20.0, 1.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each arm (medians)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: temporary SQLite)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    servers = []
    if "AWS_ENDPOINT_URL_S3" not in os.environ:
        moto, endpoint = start_moto_s3()
        servers.append(moto)
        os.environ.update(
            AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )  # fmt: skip
    mlflow_server = None
    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow_server = start_mlflow_server(root)
        os.environ["MLFLOW_TRACKING_URI"] = mlflow_server.url
    os.environ.update(
        MLOPS_OPTUNA_STORAGE=args.storage or f"sqlite:///{root}/optuna.db",
        MLOPS_N_TRIALS=str(args.trials), MLOPS_CV_FOLDS=str(args.folds),
        MLOPS_EXPERIMENT=f"bench-tuning-{int(time.time())}", MLOPS_LAKE_BUCKET="bench-lake",
    )  # fmt: skip

    from ml.etl import extract, split, validate
    from ml.lake import Lake
    from ml.search import run_search
    from ml.settings import MLSettings
    from ml.spec import get_spec

    settings, spec = MLSettings(), get_spec("breast_cancer")
    lake = Lake.from_env(settings.lake_bucket)
    lake.ensure_bucket()
    extract(spec, lake)
    split(spec, lake, settings.seed, settings.test_size, validate(spec, lake, settings.max_invalid_fraction))

    # The arms alternate (bare, logged, bare, logged...) on fresh studies; medians are compared, because
    # parallel TPE explores differently from run to run (and forests cost 10x a logistic regression).
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for log_trials in (False, True):
            started = time.perf_counter()
            warnings.filterwarnings("ignore")  # sklearn/optuna notices would drown the figures
            out = run_search(spec, settings, lake, args.workers, log_trials, finish=False, start_method="fork")
            wall = time.perf_counter() - started
            times[log_trials].append(wall)
            logged_runs = sum(w.child_runs_logged for w in out.workers)
            label = "with MLflow child runs" if log_trials else "bare (no logging)"
            print(f"run {repeat + 1}: {label:24s} {wall:7.2f} s  {args.trials / wall:6.1f} trials/s  "
                  f"child runs logged: {logged_runs}")  # fmt: skip
    bare, logged = statistics.median(times[False]), statistics.median(times[True])
    ratio = logged / bare
    storage = settings.optuna_storage.split(":")[0]
    reference_ratio = REFERENCE["logged_s"] / REFERENCE["bare_s"]
    print()
    print(f"trials={args.trials} workers={args.workers} folds={args.folds} storage={storage}")
    print(f"logging overhead ratio: {ratio:.2f}x (target <= {TARGET_RATIO}x; reference {reference_ratio:.2f}x)")
    print(f"medians of {args.repeats}: bare {bare:.1f} s, logged {logged:.1f} s")
    print(f"logged search: {logged:.1f} s (target <= {TARGET_LOGGED_S:.0f} s; reference {REFERENCE['logged_s']} s)")
    print(f"per-trial logging cost: {(logged - bare) / args.trials * 1000:.1f} ms (reference 80-90 ms)")
    if mlflow_server:
        mlflow_server.stop()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
