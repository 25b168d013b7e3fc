"""### ETL: source -> raw -> validated -> processed, through the S3 lake

One DAG per active dataset spec (`MLOPS_DATASETS`, default: every spec in `ml/datasets/`), id
`etl_<dataset>`. It extracts the dataset into the raw zone of the lake, validates it against the schema
derived from its spec (failing rows go to `quarantine/` with reasons; the run fails if more than
`MLOPS_MAX_INVALID_FRACTION` of the rows fail), and writes a seeded train/test split (stratified for
classification) as Parquet to `processed/`. Data moves only through S3; tasks pass small manifests to each
other (the typed contracts of `ml.contracts`, as JSON XComs). The split task updates the dataset's
**processed_&lt;dataset&gt;** Asset, which schedules `training_<dataset>`.

Logic lives in `ml.steps`; this file only wires tasks together.
"""

from __future__ import annotations

from airflow.sdk import DAG, dag, task
from common import DEFAULT_ARGS, START_DATE, active_specs, dag_tags, processed_asset, spec_doc
from pipeline_ids import etl_dag_id

from ml.contracts import RawManifest, ValidationReport
from ml.spec import DatasetSpec


def etl_dag(spec: DatasetSpec) -> DAG:
    """The ETL DAG of one dataset spec."""
    dataset = spec.name

    @dag(
        dag_id=etl_dag_id(dataset),
        description=f"{spec.title}: extract, validate and split ({spec.task.value})",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=dag_tags(spec, "etl"),
        doc_md=spec_doc(spec, __doc__ or ""),
    )
    def etl() -> None:
        @task
        def extract() -> dict:
            """Land the source in `raw/` with a manifest (source, rows, sha256, time)."""
            from ml.steps import extract_step

            return extract_step(dataset).model_dump(mode="json")

        @task
        def validate(raw_manifest: dict) -> dict:
            """Check every row against the spec; quarantine failures with their reasons."""
            from ml.steps import validate_step

            return validate_step(dataset, RawManifest.model_validate(raw_manifest)).model_dump(mode="json")

        @task(outlets=[processed_asset(dataset)])
        def split(report: dict) -> dict:
            """Write the train/test split to `processed/` and update the Asset."""
            from ml.steps import split_step

            return split_step(dataset, ValidationReport.model_validate(report)).model_dump(mode="json")

        split(validate(extract()))

    return etl()


for _spec in active_specs().specs:
    etl_dag(_spec)
