"""``python -m ml``: the ML library's command line, offline (no S3, MLflow or Airflow needed).

    python -m ml list                       # the dataset specs in ml/datasets/
    python -m ml validate breast_cancer     # a spec and its data: the checks the ETL's validate step runs
    python -m ml validate path/to/spec.yaml --show 20

``validate`` loads the spec (a clear message for each problem), reads its source exactly as the ETL's
extract step does (to CSV text and back, so types are checked as the pipeline sees them), runs the
validation step's checks and prints the row counts, the quarantine reasons by field and the first
quarantined rows. Exit status: 0 when the data would pass (at most ``MLOPS_MAX_INVALID_FRACTION`` of the
rows quarantined), 1 when it would fail, 2 when the spec or the source cannot be read.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from pathlib import Path

from ml.spec import DatasetSpec, SpecError, available_datasets, get_spec, load_spec_file


def _spec(name_or_path: str) -> DatasetSpec:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return load_spec_file(path)
    return get_spec(name_or_path)


def cmd_list(_: argparse.Namespace) -> int:
    """Print each shipped spec: name, title, target and number of features."""
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
    print(f"spec {spec.name}: valid ({len(spec.features)} features, target {spec.target.name})")
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
    for _, row in quarantined.head(args.show).iterrows():
        print(f"  row {row[ROW_COLUMN]}: {row[REASON_COLUMN]}")
    verdict = "passes" if fraction <= limit else "FAILS"
    print(f"{verdict}: at most {limit:.1%} of the rows may be quarantined (MLOPS_MAX_INVALID_FRACTION)")
    return 0 if fraction <= limit else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the dataset specs in ml/datasets/").set_defaults(run=cmd_list)
    check = commands.add_parser("validate", help="validate a spec and its data offline (as the ETL would)")
    check.add_argument("spec", help="a spec name from ml/datasets/ or the path of a spec file (.yaml)")
    check.add_argument("--show", type=int, default=10, help="quarantined rows to print (default 10)")
    check.set_defaults(run=cmd_validate)
    args = parser.parse_args(argv)
    return int(args.run(args))
