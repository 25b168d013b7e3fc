"""Champions and API processes for the API's integration tests and benchmark, on a registry stack.

* the registry stack (moto S3 and a real ``mlflow server``): :mod:`tests.support.mlflow_server`;
* champions: the ML library's real pipeline (extract, validate, split, Optuna search, registry gate) run
  in a subprocess (``python -m tests.integration.api.api_stack train``) so its MLflow and Optuna state
  stays out of the caller;
* the API: ``uvicorn api.main:app`` as a process, configured only through its environment.

Everything listens on free ports of 127.0.0.1 under one temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.mlflow_server import QUIET, RegistryStack
from tests.support.ports import free_port
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_http

REPO = Path(__file__).resolve().parents[3]


def train_champion(
    stack: RegistryStack,
    model_name: str,
    spec_json: str | None = None,
    n_trials: int = 4,
    min_champion_score: float = 0.5,
    timeout: float = 600,
) -> dict[str, Any]:
    """Run the real pipeline for ``spec_json`` (default: breast cancer) and the gate; returns the decision."""
    out = stack.root / f"train-{model_name}-{len(stack.trained)}.json"
    env = (
        os.environ
        | stack.env
        | {
            "MLOPS_LAKE_BUCKET": f"lake-{abs(hash(model_name)) % 10**8}",
            "MLOPS_OPTUNA_STORAGE": f"sqlite:///{stack.root}/optuna.db",
            "MLOPS_N_TRIALS": str(n_trials),
            "MLOPS_CV_FOLDS": "3",
            "PYTHONPATH": str(REPO),
        }
    )
    cmd = [sys.executable, "-m", "tests.integration.api.api_stack", "train", "--output", str(out)]
    cmd += ["--model-name", model_name, "--min-score", str(min_champion_score)]
    if spec_json is not None:
        spec_file = stack.root / f"spec-{model_name}-{len(stack.trained)}.json"
        spec_file.write_text(spec_json)
        cmd += ["--spec", str(spec_file)]
    log = stack.root / "train.log"
    with log.open("ab") as handle:
        done = subprocess.run(cmd, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"training failed ({done.returncode}):\n{log.read_text()[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    stack.trained.append(result)
    return result


def _train(spec_path: str | None, output: str, model_name: str | None, min_score: float | None) -> None:
    """Child process: extract, validate, split, search and gate with the settings in the environment.

    ``model_name`` and ``min_score`` override the spec's registered model and first-model threshold.
    """
    from ml.etl import extract, split, validate
    from ml.lake import Lake
    from ml.registry import register_and_gate
    from ml.search import run_search
    from ml.settings import MLSettings
    from ml.spec import get_spec, parse_spec

    settings = MLSettings()
    spec = parse_spec(Path(spec_path).read_text(), spec_path) if spec_path else get_spec(settings.dataset)
    training = spec.training.model_copy(update={"min_champion_score": min_score}) if min_score is not None else None
    spec = spec.model_copy(update={"model_name": model_name or spec.model_name, "training": training or spec.training})
    lake = Lake.from_env(settings.lake_bucket)
    lake.ensure_bucket()
    extract(spec, lake)
    report = validate(spec, lake, settings.max_invalid_fraction)
    split(spec, lake, settings.seed, settings.test_size, report)
    run = run_search(spec, settings, lake, workers=1, log_trials=False)
    assert run.result is not None
    decision = register_and_gate(run.result, spec, settings, lake)
    payload = (
        {"search_seconds": run.search_seconds}
        | run.result.model_dump(mode="json")
        | {"decision": decision.model_dump(mode="json")}
    )
    Path(output).write_text(json.dumps(payload, default=str))


class ApiProcess(ServerProcess):
    """``uvicorn api.main:app`` as a process (one worker, uvloop/httptools when installed)."""


def start_api(env: dict[str, str], log: Path, port: int | None = None, timeout: float = 60) -> ApiProcess:
    """Start the API with exactly ``env`` (plus PATH) and wait for /health."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log",
    ]  # fmt: skip
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **QUIET, **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    api = ApiProcess(proc, port, log)
    try:
        wait_http(f"{api.url}/health", timeout, proc, log)
    except Exception:
        api.stop()
        raise
    return api


def main(argv: list[str] | None = None) -> int:
    """``train``: the child process of :func:`train_champion`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run the pipeline and the gate with the environment's settings")
    train.add_argument("--spec", help="dataset spec JSON file (default: MLOPS_DATASET's shipped spec)")
    train.add_argument("--output", required=True, help="where to write the result JSON")
    train.add_argument("--model-name", help="registered model name (default: the spec's)")
    train.add_argument("--min-score", type=float, help="first-model threshold (default: the spec's)")
    args = parser.parse_args(argv)
    _train(args.spec, args.output, args.model_name, args.min_score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
