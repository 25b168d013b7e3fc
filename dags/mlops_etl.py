"""### ETL: source -> raw -> validated -> processed, through the S3 lake

Extracts the configured dataset (`MLOPS_DATASET`, default `breast_cancer`) into the raw zone of the lake,
validates it against the schema derived from its spec (failing rows go to `quarantine/` with reasons;
the run fails if more than `MLOPS_MAX_INVALID_FRACTION` of the rows fail), and writes a seeded,
stratified train/test split as Parquet to `processed/`. Data moves only through S3; tasks pass small
manifests to each other (the typed contracts of `ml.contracts`, as JSON XComs). The split task updates
the **processed** Asset, which schedules `mlops_training`.

Logic lives in `ml.steps`; this file only wires tasks together.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from common import DEFAULT_ARGS, PROCESSED, SETTINGS, START_DATE

from ml.contracts import RawManifest, ValidationReport


@dag(
    dag_id="mlops_etl",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["mlops", "etl", SETTINGS.dataset],
    doc_md=__doc__,
)
def mlops_etl() -> None:
    """Extract, validate and split the dataset."""

    @task
    def extract() -> dict:
        """Land the source in `raw/` with a manifest (source, rows, sha256, time)."""
        from ml.steps import extract_step

        return extract_step(SETTINGS.dataset).model_dump(mode="json")

    @task
    def validate(raw_manifest: dict) -> dict:
        """Check every row against the spec; quarantine failures with their reasons."""
        from ml.steps import validate_step

        return validate_step(SETTINGS.dataset, RawManifest.model_validate(raw_manifest)).model_dump(mode="json")

    @task(outlets=[PROCESSED])
    def split(report: dict) -> dict:
        """Write the stratified train/test split to `processed/` and update the Asset."""
        from ml.steps import split_step

        return split_step(SETTINGS.dataset, ValidationReport.model_validate(report)).model_dump(mode="json")

    split(validate(extract()))


mlops_etl()
