"""### A dataset spec that does not load

The spec file named in this DAG's id (`ml/datasets/<dataset>.yaml`) failed to load, so the DAG files
generated no `etl_<dataset>` / `training_<dataset>` DAGs for it; every other dataset's DAGs are unaffected.
This placeholder exists so the failure is visible: its one run fails with the error, and the error is in
its description and below.

Fix the file (check it offline with `python -m ml validate <dataset>`); within about one parse interval
(`[dag_processor] min_file_process_interval`) its ETL and training DAGs appear and this DAG goes away.
No restart is needed.
"""

from __future__ import annotations

from airflow.sdk import DAG, dag, task
from common import START_DATE, active_specs
from pipeline_ids import broken_spec_dag_id

from ml.spec import SpecError


def broken_spec_dag(dataset: str, error: str) -> DAG:
    """A DAG that runs once and fails with the spec's error (visible in the UI and the REST API)."""

    @dag(
        dag_id=broken_spec_dag_id(dataset),
        description=f"spec error: {error}"[:500],
        schedule="@once",
        start_date=START_DATE,
        catchup=False,
        default_args={"owner": "mlops", "retries": 0},
        tags=["mlops", "broken-spec", dataset],
        doc_md=f"{__doc__}\n\n**Error:**\n\n```\n{error}\n```\n",
    )
    def broken_spec() -> None:
        @task
        def report_spec_error() -> None:
            """Fail with the error of the spec file."""
            raise SpecError(
                f"{error}\nFix ml/datasets/{dataset}.yaml (check it with `python -m ml validate {dataset}`); "
                "its DAGs appear at the next parse, without a restart."
            )

        report_spec_error()

    return broken_spec()


for _name, _error in active_specs().errors.items():
    broken_spec_dag(_name, _error)
