import multiprocessing

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ml.etl import extract, split, validate
from ml.lake import Lake
from ml.model import to_matrix
from ml.search import SearchHandle, finish_search, prepare_search, run_search, run_worker
from ml.settings import MLSettings
from ml.spec import get_spec
from ml.tracking import PARENT_TAG, ChildRunLogger, child_runs
from tests.datasets import write_dataset
from tests.unit.ml.conftest import isolated


def land(spec, lake: Lake, settings: MLSettings) -> None:
    extract(spec, lake)
    split(spec, lake, settings.seed, settings.test_size, validate(spec, lake, settings.max_invalid_fraction))


def test_mixed_type_dataset_trains_end_to_end(tmp_path, lake: Lake, ml_env: MLSettings) -> None:
    spec = write_dataset(tmp_path)
    land(spec, lake, ml_env)
    result = run_search(spec, ml_env, lake).result
    assert result is not None
    client = MlflowClient()
    children = child_runs(client, result.run_id)
    assert len(children) == ml_env.n_trials
    parent = client.get_run(result.run_id)
    for key in ("best_cv_score", "test_f1", "test_precision", "test_recall", "test_roc_auc", "test_accuracy"):
        assert key in parent.data.metrics
    assert parent.data.params["data_version"] == result.data_version
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "figures")}
    assert artifacts == {
        f"figures/{n}.png"
        for n in (
            "optimisation_history",
            "param_importances",
            "confusion_matrix",
            "roc_curve",
            "precision_recall_curve",
        )
    }
    info = mlflow.models.get_model_info(result.model_uri)
    assert info.metadata["dataset_spec"]["name"] == "loan_demo"
    assert info.metadata["data_version"] == result.data_version
    assert info.signature.inputs.input_names() == spec.feature_names
    # the pipeline imputes, encodes and ignores unknown categories: raw values go straight in
    model = mlflow.sklearn.load_model(result.model_uri)
    records = [
        {"income": 1200.0, "age": None, "employment": "employed", "region": None, "has_guarantor": True,
         "owns_home": False},
        {"income": 5400.0, "age": 30, "employment": "astronaut", "region": "mars", "has_guarantor": None,
         "owns_home": True},
    ]  # fmt: skip
    import pandas as pd

    proba = model.predict_proba(to_matrix(pd.DataFrame(records), spec))
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)


def _worker(handle: dict, settings_env: dict, n_trials: int, worker: int, queue) -> None:
    import os

    os.environ.update(settings_env)
    settings = MLSettings(n_trials=n_trials)
    report = run_worker(
        SearchHandle(**handle), get_spec("breast_cancer"), settings, Lake.from_env(settings.lake_bucket), worker
    )
    queue.put(report)


def test_trials_from_several_processes_are_children_of_one_parent(lake: Lake, ml_env: MLSettings) -> None:
    import os

    spec = get_spec("breast_cancer")
    land(spec, lake, ml_env)
    handle = prepare_search(spec, ml_env, lake)
    env = {k: v for k, v in os.environ.items() if k.startswith(("MLOPS_", "AWS_", "MLFLOW_"))}
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    # two separate processes on one study: the first runs while the search's budget is 3, then the budget
    # is raised to 6 and the second process takes the search there
    import optuna

    study = optuna.load_study(study_name=handle.study_name, storage=ml_env.optuna_storage)
    for worker, budget in ((0, 3), (1, 6)):
        study.set_user_attr("n_trials", budget)
        proc = ctx.Process(target=_worker, args=(handle.model_dump(), env, budget, worker, queue))
        proc.start()
        proc.join(300)
        assert proc.exitcode == 0
    reports = [queue.get(timeout=5) for _ in range(2)]
    assert sorted(r.child_runs_logged for r in reports) == [3, 3]
    children = child_runs(MlflowClient(), handle.parent_run_id)
    assert len(children) == 6
    assert {c.data.tags[PARENT_TAG] for c in children} == {handle.parent_run_id}
    assert {c.data.tags["worker"] for c in children} == {"0", "1"}
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(6))
    for child in children:
        assert "family" in child.data.params
        if child.data.tags["optuna.state"] == "COMPLETE":
            assert {"cv_mean", "cv_std", "duration_s"} <= set(child.data.metrics)
    # preparing again with the same study name finds the same search (idempotent Airflow retries)
    again = prepare_search(spec, ml_env, lake, study_name=handle.study_name)
    assert again == handle
    first = finish_search(handle, spec, ml_env, lake)
    assert finish_search(handle, spec, ml_env, lake) == first
    assert first.test_metrics["f1"] > 0.9


def test_worker_stops_at_the_budget(lake: Lake, ml_env: MLSettings) -> None:
    spec = get_spec("breast_cancer")
    land(spec, lake, ml_env)
    handle = prepare_search(spec, ml_env, lake)
    run_worker(handle, spec, ml_env, lake)
    again = run_worker(handle, spec, ml_env, lake)  # a retried task adds no trials beyond the budget
    assert again.trials_in_study == ml_env.n_trials
    assert again.child_runs_logged == 0


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
def test_metric_is_configurable(lake: Lake, ml_env: MLSettings, metric: str) -> None:
    spec = isolated(get_spec("breast_cancer"), metric=metric)
    settings = ml_env.model_copy(update={"n_trials": 3})
    land(spec, lake, settings)
    result = run_search(spec, settings, lake).result
    assert result is not None
    parent = MlflowClient().get_run(result.run_id)
    assert parent.data.params["metric"] == metric
    assert 0.5 < parent.data.metrics["best_cv_score"] <= 1.0


def test_a_trial_beyond_the_budget_stops_its_worker_and_is_not_logged(lake: Lake, ml_env: MLSettings) -> None:
    import optuna

    from ml.etl.split import load_split
    from ml.model import to_matrix, to_target
    from ml.search import OVER_BUDGET, TrialTally, make_objective
    from ml.tracking import OVER_BUDGET_ATTR

    spec = get_spec("breast_cancer")
    land(spec, lake, ml_env)
    train, _, _ = load_split(spec, lake)
    objective = make_objective(spec, ml_env, to_matrix(train, spec), to_target(train, spec), budget=2)
    study = optuna.create_study(direction="maximize")
    # a worker asked for 5 trials, but the search's budget is 2 (e.g. another worker took the rest)
    study.optimize(objective, n_trials=5)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert study.trials[2].params == {} and study.trials[2].user_attrs == {OVER_BUDGET_ATTR: True}
    assert TrialTally.of(study.trials) == TrialTally(complete=2)  # a stop is neither a failure nor counted
    handle = prepare_search(spec, ml_env, lake)
    logger = ChildRunLogger(MlflowClient(), handle.parent_run_id)
    for trial in study.trials:
        logger(study, trial)
    logger.close()
    assert logger.logged == 2
    assert OVER_BUDGET
