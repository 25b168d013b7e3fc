"""### Training: parallel Optuna search logged to MLflow, then the champion/challenger gate

One DAG per active dataset spec, id `training_<dataset>`. It runs whenever the dataset's ETL updates its
**processed_&lt;dataset&gt;** Asset, and can be triggered by hand (optionally with `{"n_trials": N, "workers": K}`).
Each dataset's runs are independent: a failed or gated-out model never blocks another dataset's.

1. `prepare` creates one Optuna study in Postgres and one MLflow parent run for this DAG run (experiment:
   the dataset's name);
2. `tune` runs as **K mapped tasks** (default `MLOPS_TUNING_WORKERS`) that all work on that one study
   until the trial budget (`MLOPS_N_TRIALS`) is used, each trial logged as an MLflow child run; add
   Airflow workers and the search scales out;
3. `finish` refits the best configuration, evaluates it on the test split and logs figures and the
   model (signature, input example, dataset spec, data version);
4. `gate` registers it as `challenger` of the dataset's registered model and promotes it to `champion`
   only if it beats the current one in the spec's metric (`python -m ml gate <dataset>` re-runs this step).

Every step is idempotent (the study is named after the DAG run), so retries are safe. Tasks pass the typed
contracts of `ml.contracts` to each other, as JSON XComs.
Logic lives in `ml.steps`; this file only wires tasks together.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, dag, get_current_context, task
from common import DEFAULT_ARGS, SETTINGS, START_DATE, active_specs, dag_tags, processed_asset, spec_doc
from pipeline_ids import training_dag_id

from ml.contracts import SearchPlan, SearchResult
from ml.spec import DatasetSpec


def training_dag(spec: DatasetSpec) -> DAG:
    """The training DAG of one dataset spec, scheduled on the Asset its ETL updates."""
    dataset = spec.name

    @dag(
        dag_id=training_dag_id(dataset),
        description=f"{spec.title}: tune, evaluate, register and gate ({spec.task.value}, {spec.metric.name})",
        schedule=[processed_asset(dataset)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=dag_tags(spec, "training"),
        doc_md=spec_doc(spec, __doc__ or ""),
        params={
            "n_trials": Param(SETTINGS.n_trials, type="integer", minimum=1, description="Trial budget."),
            "workers": Param(SETTINGS.tuning_workers, type="integer", minimum=1, maximum=32, description="K."),
        },
    )
    def training() -> None:
        @task
        def prepare() -> dict:
            """Create the study and the MLflow parent run (or find them again on retry)."""
            from ml.steps import prepare_step

            context = get_current_context()
            n_trials = int(context["params"]["n_trials"])
            return prepare_step(dataset, context["run_id"], n_trials).model_dump(mode="json")

        @task
        def workers() -> list[int]:
            """Worker indexes for the mapped tuning tasks."""
            return list(range(int(get_current_context()["params"]["workers"])))

        @task
        def tune(handle: dict, worker: int) -> dict:
            """Run trials on the shared study until the budget is used."""
            from ml.steps import tune_step

            return tune_step(dataset, SearchPlan.model_validate(handle), worker).model_dump(mode="json")

        @task
        def finish(handle: dict) -> dict:
            """Refit the best trial, evaluate, log the model."""
            from ml.steps import finish_step

            return finish_step(dataset, SearchPlan.model_validate(handle)).model_dump(mode="json")

        @task
        def gate(result: dict, handle: dict) -> dict:
            """Register as challenger; promote to champion if it wins."""
            from ml.steps import gate_step

            decision = gate_step(dataset, SearchResult.model_validate(result), SearchPlan.model_validate(handle))
            return decision.model_dump(mode="json")

        handle = prepare()
        tuned = tune.partial(handle=handle).expand(worker=workers())
        result = finish(handle)
        tuned >> result
        gate(result, handle)

    return training()


for _spec in active_specs().specs:
    training_dag(_spec)
