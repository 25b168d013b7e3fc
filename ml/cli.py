"""``python -m ml``: the ML library's command line (``list`` and ``validate`` work offline).

    python -m ml list                       # the dataset specs in ml/datasets/, with their tasks
    python -m ml validate breast_cancer     # a spec and its data: the checks the ETL's validate step runs
    python -m ml validate path/to/spec.yaml --show 20
    python -m ml gate wine [--version 3]    # re-run the registry gate for a registered version (S3 + MLflow)

``validate`` loads the spec (a clear message for each problem), reads its source exactly as the ETL's
extract step does (to CSV text and back, so types are checked as the pipeline sees them), runs the
validation step's checks and prints the row counts, the quarantine reasons by field and the first
quarantined rows. Exit status: 0 when the data would pass (at most ``MLOPS_MAX_INVALID_FRACTION`` of the
rows quarantined), 1 when it would fail, 2 when the spec or the source cannot be read.

``gate`` decides again, without retraining, whether an existing version (default: the newest) of a
dataset's registered model becomes champion, with the spec's current ``training`` threshold and margin
(e.g. after lowering ``min_champion_score``): it scores on the current split in the lake, moves the
aliases, rewrites the gate tags and prints the decision and its reason. Exit status: 0 when the gate ran
(promoted or not), 2 on errors (unknown dataset, no such version, MLflow or S3 unreachable).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ml.spec import DatasetSpec, SpecError, available_datasets, get_spec, load_spec_file


def _spec(name_or_path: str) -> DatasetSpec:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return load_spec_file(path)
    return get_spec(name_or_path)


def cmd_list(_: argparse.Namespace) -> int:
    """Print each shipped spec: name, task, title, target and number of features."""
    for name in available_datasets():
        try:
            spec = get_spec(name)
        except SpecError as exc:
            print(f"{name:<24} INVALID: {exc}")
            continue
        print(f"{name:<24} {spec.task.value:<10} {spec.title}: {spec.target.name}, {len(spec.features)} features")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a spec and its data offline; print what the ETL would quarantine and why."""
    import pandas as pd

    from ml.etl.validate import REASON_COLUMN, ROW_COLUMN, ValidationFailedError, check_frame
    from ml.readers import read_source
    from ml.settings import MLSettings

    try:
        spec = _spec(args.spec)
    except SpecError as exc:
        print(f"spec: {exc}", file=sys.stderr)
        return 2
    print(f"spec {spec.name}: valid ({spec.task.value}, {len(spec.features)} features, target {spec.target.name})")
    try:
        frame = read_source(spec)
    except Exception as exc:  # any reader error: say which source and why
        print(f"source ({spec.source.reader}): cannot be read: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    raw = pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=True)  # as landed
    try:
        valid, quarantined = check_frame(raw, spec)
    except ValidationFailedError as exc:
        print(f"data: {exc}", file=sys.stderr)
        return 1
    limit = MLSettings().max_invalid_fraction
    fraction = len(quarantined) / max(len(raw), 1)
    print(f"rows: {len(raw)} read, {len(valid)} valid, {len(quarantined)} quarantined ({fraction:.1%})")
    reasons = Counter(r.split(":")[0] for rs in quarantined[REASON_COLUMN] for r in rs.split("; "))
    for field, count in reasons.most_common():
        print(f"  {field}: {count} row(s)")
    print(_target_summary(valid, spec))
    for _, row in quarantined.head(args.show).iterrows():
        print(f"  row {row[ROW_COLUMN]}: {row[REASON_COLUMN]}")
    verdict = "passes" if fraction <= limit else "FAILS"
    print(f"{verdict}: at most {limit:.1%} of the rows may be quarantined (MLOPS_MAX_INVALID_FRACTION)")
    return 0 if fraction <= limit else 1


def _target_summary(valid: Any, spec: DatasetSpec) -> str:
    """One line on the valid rows' target: rows per class, or a regression target's range and quartiles."""
    values = valid[spec.target.name]
    if spec.task.is_classification:
        counts = ", ".join(f"{label} {int((values == label).sum())}" for label in spec.target.labels)
        return f"target {spec.target.name} ({spec.task.value}): {counts}"
    v = values.astype(float)
    unit = f" {spec.target.unit}" if spec.target.unit else ""
    q25, median, q75 = v.quantile([0.25, 0.5, 0.75])
    return (
        f"target {spec.target.name} (regression{unit}): min {v.min():g}, q25 {q25:g}, median {median:g}, "
        f"q75 {q75:g}, max {v.max():g}, mean {v.mean():.4g}, std {v.std():.4g}"
    )


def cmd_gate(args: argparse.Namespace) -> int:
    """Re-run the registry gate for a registered version with the spec's current settings; print the decision."""
    from ml.lake import Lake
    from ml.registry import GateError, regate
    from ml.settings import MLSettings

    try:
        spec = _spec(args.dataset)
    except SpecError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return 2
    try:
        settings = MLSettings()
        decision = regate(spec, settings, Lake.from_env(settings.lake_bucket), args.version)
    except GateError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # MLflow or S3 unreachable, no split in the lake...: say what failed
        print(f"gate: {spec.registered_model}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    verdict = "champion" if decision.promoted else "not promoted (stays challenger)"
    print(f"{decision.model_name} v{decision.version}: {verdict}")
    print(f"reason: {decision.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the dataset specs in ml/datasets/").set_defaults(run=cmd_list)
    check = commands.add_parser("validate", help="validate a spec and its data offline (as the ETL would)")
    check.add_argument("spec", help="a spec name from ml/datasets/ or the path of a spec file (.yaml)")
    check.add_argument("--show", type=int, default=10, help="quarantined rows to print (default 10)")
    check.set_defaults(run=cmd_validate)
    gate = commands.add_parser("gate", help="re-run the registry gate for a registered version (no retraining)")
    gate.add_argument("dataset", help="a spec name from ml/datasets/ (or a spec file)")
    gate.add_argument("--version", help="the model version to decide on (default: the newest)")
    gate.set_defaults(run=cmd_gate)
    args = parser.parse_args(argv)
    return int(args.run(args))
