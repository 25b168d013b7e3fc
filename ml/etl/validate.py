"""Validate: check the landed raw data against a schema derived from the spec; quarantine failing rows.

Two passes, so each failing row gets a precise reason:

1. parsing: every value is read as text and converted to its feature's type (a value that is not a
   number, not a whole number for an integer feature, or not a recognisable boolean, fails here with the
   offending value); a regression target is parsed as a number;
2. a pandera schema built from the spec checks types, ranges, allowed categories, missing values,
   duplicate rows and target values (a class of the spec, or a number within the target's range),
   lazily, so every failure of every row is reported.

Rows with any failure go to ``quarantine/`` with their reasons; the others go to ``validated/``. Nothing
is dropped silently: the report counts rows in = valid + quarantined. If more than the allowed fraction
fails, the step raises :class:`ValidationFailedError` after writing the quarantine file.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict

import pandas as pd
import pandera.pandas as pa

from ml.contracts import RawManifest, RawPointer, ValidationReport
from ml.etl.extract import latest_raw_key
from ml.lake import Lake
from ml.spec import DatasetSpec, FeatureKind, FeatureSpec
from ml.tasks import TaskType

TRUE_WORDS = frozenset({"true", "1", "1.0", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "0.0", "no", "n", "f"})
REASON_COLUMN = "_reasons"
ROW_COLUMN = "_source_row"


class ValidationFailedError(RuntimeError):
    """Too many rows failed validation (or the data lacks required columns)."""


def build_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The pandera schema of a dataset's typed rows, derived from its spec."""
    columns: dict[str, pa.Column] = {}
    for feature in spec.features:
        columns[feature.name] = _column(feature)
    columns[spec.target.name] = _target_column(spec)
    return pa.DataFrameSchema(
        columns,
        strict=False,
        ordered=False,
        unique=spec.columns,
        report_duplicates="exclude_first",
        name=f"{spec.name} rows",
    )


def _range(minimum: float | None, maximum: float | None) -> list[pa.Check]:
    if minimum is None and maximum is None:
        return []
    low = minimum if minimum is not None else float("-inf")
    return [pa.Check.in_range(low, maximum if maximum is not None else float("inf"))]


def _column(feature: FeatureSpec) -> pa.Column:
    if feature.kind is FeatureKind.NUMERIC:
        return pa.Column(float, _range(feature.minimum, feature.maximum), nullable=feature.nullable)
    if feature.kind is FeatureKind.INTEGER:
        return pa.Column("Int64", _range(feature.minimum, feature.maximum), nullable=feature.nullable)
    if feature.kind is FeatureKind.CATEGORICAL:
        return pa.Column(object, pa.Check.isin(list(feature.categories or ())), nullable=feature.nullable)
    return pa.Column("boolean", nullable=feature.nullable)


def _target_column(spec: DatasetSpec) -> pa.Column:
    target = spec.target
    if spec.task is TaskType.REGRESSION:
        return pa.Column(float, _range(target.minimum, target.maximum), nullable=False, title="target")
    return pa.Column(str, pa.Check.isin(list(target.labels)), nullable=False, title="target")


def _parse_number(text: pd.Series, present: pd.Series, name: str, whole: bool) -> tuple[pd.Series, dict[int, str]]:
    """Text to numbers (``Int64`` when ``whole``); a reason for each value that is not a (whole) number."""
    values = pd.to_numeric(text.where(present), errors="coerce").astype(float)
    bad = {int(i): f"{name}: {text[i]!r} is not a number" for i in text.index[present & values.isna()]}
    if not whole:
        return values, bad
    fractional = values.notna() & (values % 1 != 0)
    bad |= {int(i): f"{name}: {text[i]!r} is not a whole number" for i in text.index[fractional]}
    return values.where(~fractional).round().astype("Int64"), bad


def _parse_boolean(text: pd.Series, present: pd.Series, name: str) -> tuple[pd.Series, dict[int, str]]:
    lowered = text.where(present).astype("string").str.strip().str.lower()
    values = pd.Series(pd.NA, index=text.index, dtype="boolean")
    values[lowered.isin(TRUE_WORDS).fillna(False)] = True
    values[lowered.isin(FALSE_WORDS).fillna(False)] = False
    bad = {
        int(i): f"{name}: {text[i]!r} is not a boolean (use true/false or 1/0)"
        for i in text.index[present & values.isna()]
    }
    return values, bad


def _parse_text(text: pd.Series, present: pd.Series) -> pd.Series:
    values = text.where(present).map(lambda v: str(v).strip() if isinstance(v, str) else v)
    return values.astype(object).where(present, None)


def _parse(raw: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Convert text columns to their feature types; collect a reason for every value that does not parse."""
    reasons: dict[int, list[str]] = defaultdict(list)
    typed = pd.DataFrame(index=raw.index)
    kinds = [(f.name, f.kind) for f in spec.features]
    target_kind = FeatureKind.NUMERIC if spec.task is TaskType.REGRESSION else FeatureKind.CATEGORICAL
    for name, kind in [*kinds, (spec.target.name, target_kind)]:
        text = raw[name]
        present = text.notna() & (text.astype(str).str.strip() != "")
        bad: dict[int, str] = {}
        if kind.is_number:
            values, bad = _parse_number(text, present, name, whole=kind is FeatureKind.INTEGER)
        elif kind is FeatureKind.BOOLEAN:
            values, bad = _parse_boolean(text, present, name)
        else:
            values = _parse_text(text, present)
        for idx, reason in bad.items():
            reasons[idx].append(reason)
        typed[name] = values
    return typed, reasons


def _describe_failure(row: pd.Series, spec: DatasetSpec) -> str:
    check = str(row["check"])
    column = row["column"]
    case = row["failure_case"]
    if check == "multiple_fields_uniqueness":
        return "duplicate of an earlier row"
    if check == "not_nullable":
        return f"{column}: missing value (not allowed for this field)"
    if column == spec.target.name and check.startswith("isin"):
        return f"{column}: {case!r} is not a target class {list(spec.target.labels)}"
    if check.startswith("in_range"):
        bounds = spec.target if column == spec.target.name else spec.feature(column)
        if isinstance(bounds, FeatureSpec) and bounds.kind is FeatureKind.INTEGER:
            case = int(case)  # pandera reports the Int64 value as a float
        return f"{column}: {case} is outside [{bounds.minimum}, {bounds.maximum}]"
    if check.startswith("isin"):
        coded = spec.feature(column).codes
        known = f" (nor one of the codes {', '.join(coded)})" if coded else ""
        return f"{column}: {case!r} is not an allowed category{known}"
    return f"{column}: failed {check} with {case!r}"


def check_frame(raw: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw text rows into (valid typed rows, quarantined raw rows with their reasons).

    Raises :class:`ValidationFailedError` when required columns are missing altogether.
    """
    missing = [c for c in spec.columns if c not in raw.columns]
    if missing:
        raise ValidationFailedError(
            f"{spec.name}: the landed data has no column(s) {missing} (it has {list(raw.columns)}); "
            "the source or the spec changed: fix the reader's rename option or the spec"
        )
    raw = raw.reset_index(drop=True)
    typed, reasons = _parse(raw, spec)
    parse_failed = list(reasons)
    try:
        build_schema(spec).validate(typed.drop(index=parse_failed), lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        unattributed = cases[cases["index"].isna()]
        if not unattributed.empty:
            details = "; ".join(f"{r.column}: {r.check} ({r.failure_case})" for r in unattributed.itertuples())
            raise ValidationFailedError(f"{spec.name}: the data fails schema-wide checks: {details}") from None
        seen: set[tuple[int, str]] = set()
        for _, case in cases.iterrows():
            idx, text = int(case["index"]), _describe_failure(case, spec)
            if (idx, text) not in seen:  # uniqueness failures are reported once per column
                seen.add((idx, text))
                reasons[idx].append(text)
    bad = sorted(reasons)
    quarantined = raw.loc[bad].copy()
    quarantined.insert(0, ROW_COLUMN, [i + 1 for i in bad])  # 1-based row number in the raw file
    quarantined[REASON_COLUMN] = ["; ".join(reasons[i]) for i in bad]
    valid = typed.drop(index=bad).reset_index(drop=True)
    return valid, quarantined


def validate(
    spec: DatasetSpec, lake: Lake, max_invalid_fraction: float, raw_manifest_key: str | None = None
) -> ValidationReport:
    """Validate the newest landed raw data (or the given manifest); write validated rows and quarantine.

    Returns the validation report (also written as ``report.json``). Raises
    :class:`ValidationFailedError`, after writing the quarantine file, when more than
    ``max_invalid_fraction`` of the rows fail.
    """
    manifest_key = raw_manifest_key or lake.get_model(latest_raw_key(spec), RawPointer).manifest
    manifest = lake.get_model(manifest_key, RawManifest)
    raw = pd.read_csv(io.BytesIO(lake.get_bytes(manifest.key)), dtype=str, keep_default_na=True)
    if len(raw) != manifest.rows:
        raise ValidationFailedError(
            f"{lake.uri(manifest.key)} has {len(raw)} rows but its manifest says {manifest.rows}"
        )
    valid, quarantined = check_frame(raw, spec)
    version = manifest.sha256[:16]
    prefix = f"validated/{spec.name}/{version}"
    quarantine_key = f"quarantine/{spec.name}/{version}/rows.csv"
    counts = Counter(r.split(":")[0] for rs in quarantined[REASON_COLUMN] for r in rs.split("; "))
    report = ValidationReport(
        dataset=spec.name,
        raw_manifest=manifest_key,
        raw_sha256=manifest.sha256,
        rows_in=len(raw),
        rows_valid=len(valid),
        rows_quarantined=len(quarantined),
        invalid_fraction=round(len(quarantined) / max(len(raw), 1), 6),
        max_invalid_fraction=max_invalid_fraction,
        failures_by_field=dict(counts.most_common()),
        quarantine=lake.uri(quarantine_key) if len(quarantined) else None,
        data=lake.uri(f"{prefix}/data.parquet"),
        schema_hash=spec.fingerprint(),
    )
    if report.rows_in != report.rows_valid + report.rows_quarantined:  # nothing is dropped silently
        raise ValidationFailedError(f"{spec.name}: row accounting mismatch in {report}")
    if len(quarantined):
        lake.put_csv(quarantine_key, quarantined)
    if report.invalid_fraction > max_invalid_fraction:
        examples = "; ".join(quarantined[REASON_COLUMN].head(3))
        raise ValidationFailedError(
            f"{spec.name}: {len(quarantined)} of {len(raw)} rows ({report.invalid_fraction:.1%}) failed "
            f"validation, more than the allowed {max_invalid_fraction:.1%} (MLOPS_MAX_INVALID_FRACTION). "
            f"Each failing row and its reasons are in {report.quarantine}. First reasons: {examples}"
        )
    lake.put_parquet(f"{prefix}/data.parquet", valid)
    lake.put_model(f"{prefix}/report.json", report)
    return report
