"""``make up``'s multi-model driver: independent pipelines, one summary line per model, the gate command."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.local import cli, pipeline, quickstart
from infra.local.airflow_client import AirflowError
from infra.local.model_report import ModelReport
from infra.local.pipeline import RunResult, run_pipelines

pytestmark = pytest.mark.unit


def test_a_champion_line_names_task_version_and_both_scores_in_the_spec_metric() -> None:
    report = ModelReport("wine", "multiclass", "wine_classifier", "f1_macro", "3", "3", None, 0.98123, 0.9661)
    assert (
        report.line()
        == "wine             multiclass wine_classifier v3 champion; CV f1_macro 0.981; test f1_macro 0.966"
    )


def test_a_gated_out_model_says_no_champion_with_the_gates_reason_and_its_scores() -> None:
    reason = "first model: rmse 61.2 is worse than the threshold 50"
    report = ModelReport("diabetes", "regression", "diabetes_regressor", "rmse", None, "1", reason, 61.2, 58.9)
    assert report.line() == (
        f"diabetes         regression diabetes_regressor: no champion: gate: {reason}; CV rmse 61.200 (v1); "
        "test rmse 58.900"
    )


def test_a_failed_pipeline_is_reported_on_the_models_line() -> None:
    never = ModelReport("wine", "multiclass", "wine_classifier", "f1_macro", problem="DAG etl_wine failed")
    assert never.line().endswith("wine_classifier: no champion: DAG etl_wine failed")
    kept = ModelReport(
        "wine", "multiclass", "wine_classifier", "f1_macro", "2", "2", problem="DAG training_wine failed"
    )
    assert kept.line().endswith("wine_classifier v2 champion; this run: DAG training_wine failed")


def test_problems_name_the_first_dag_that_did_not_succeed_per_dataset() -> None:
    runs = [
        RunResult("etl_breast_cancer", "m1", "success", 1), RunResult("training_breast_cancer", "a1", "success", 1),
        RunResult("etl_wine", "m2", "failed", 1), RunResult("training_wine", "", "not started", 0),
        RunResult("etl_diabetes", "m3", "success", 1), RunResult("training_diabetes", "a3", "timed out", 1),
    ]  # fmt: skip
    assert quickstart._problems(runs) == {"wine": "DAG etl_wine failed", "diabetes": "DAG training_diabetes timed out"}


def test_broken_specs_are_set_aside_and_the_others_load() -> None:
    specs, errors = quickstart.load_specs(["breast_cancer", "no_such_spec"])
    assert list(specs) == ["breast_cancer"] and specs["breast_cancer"].name == "breast_cancer"
    assert "no dataset spec named 'no_such_spec'" in errors["no_such_spec"]


# ---------------------------------------------------------------------------------------------------------
# run_pipelines against a fake Airflow: every ETL is triggered before any wait; a failure blocks nothing else
# ---------------------------------------------------------------------------------------------------------
class FakeAirflow:
    def __init__(self, final: dict[str, str]) -> None:
        self.final = final
        self.events: list[str] = []

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        return {"dag_id": dag_id}

    def trigger_dag(self, dag_id: str) -> str:
        self.events.append(f"trigger {dag_id}")
        return f"manual__{dag_id}"

    def wait_for_dag_run(self, dag_id: str, run_id: str, timeout: float, on_progress: Any) -> str:
        self.events.append(f"wait {dag_id}")
        if self.final[dag_id] == "timeout":
            raise AirflowError(f"DAG run {dag_id}/{run_id} still running after {timeout:.0f} s")
        return self.final[dag_id]

    def wait_for_new_dag_run(self, dag_id: str, after: datetime, timeout: float) -> str:
        return f"asset_triggered__{dag_id}"

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        if self.final[dag_id] == "timeout":
            return {"state": "running", "start_date": "2026-11-30T10:00:00Z", "end_date": None}
        return {"state": self.final[dag_id], "start_date": "2026-11-30T10:00:00Z", "end_date": "2026-11-30T10:00:42.5Z"}


class FakeStack:
    def __init__(self, af: FakeAirflow) -> None:
        self.af = af

    @contextlib.contextmanager
    def airflow(self) -> Iterator[FakeAirflow]:
        yield self.af


def test_pipelines_are_triggered_together_and_followed_independently() -> None:
    af = FakeAirflow({"etl_a": "failed", "etl_b": "success", "training_b": "success", "etl_c": "success",
                      "training_c": "timeout"})  # fmt: skip
    pipelines = [("etl_a", ("training_a",)), ("etl_b", ("training_b",)), ("etl_c", ("training_c",))]
    results = run_pipelines(FakeStack(af), pipelines, on_progress=None)  # type: ignore[arg-type]
    assert af.events[:3] == ["trigger etl_a", "trigger etl_b", "trigger etl_c"]
    assert [(r.dag_id, r.state) for r in results] == [
        ("etl_a", "failed"), ("training_a", "not started"), ("etl_b", "success"), ("training_b", "success"),
        ("etl_c", "success"), ("training_c", "timed out"),
    ]  # fmt: skip
    assert "wait training_a" not in af.events
    assert [r.seconds for r in results] == [42.5, 0.0, 42.5, 42.5, 42.5, 0.0]  # Airflow's clock, not our waits


def test_a_prediction_answer_in_a_few_words() -> None:
    model = {"name": "diabetes_regressor", "version": "2", "alias": "champion"}
    assert quickstart._answer({"value": 160.89334106594498, "unit": "points", "model": model}) == (
        "160.9 points from diabetes_regressor v2 @champion"
    )
    wine = {"label": "barolo", "probability": 0.4339, "model": model | {"name": "wine_classifier"}}
    assert quickstart._answer(wine) == "barolo (p=0.434) from wine_classifier v2 @champion"


def test_the_pipeline_command_runs_every_active_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_run(stack: Any, pipelines: Any, on_progress: Any, timeout: float) -> list[RunResult]:
        seen.extend(pipelines)
        return [RunResult(dag, "r", "success", 1.0) for etl, then in pipelines for dag in (etl, *then)]

    monkeypatch.setattr(pipeline, "run_pipelines", fake_run)
    monkeypatch.setattr(cli, "Stack", lambda: object())
    monkeypatch.setenv("MLOPS_DATASETS", "breast_cancer")
    outcome = CliRunner().invoke(cli.app, ["pipeline"])
    assert outcome.exit_code == 0, outcome.output
    assert seen == [("etl_breast_cancer", ("training_breast_cancer",))]


def test_make_gate_runs_the_ml_gate_command_with_the_pipelines_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    class Stack:
        def client_env(self) -> dict[str, str]:
            return {"MLFLOW_TRACKING_USERNAME": "pipeline", "AWS_ACCESS_KEY_ID": "pipeline-key"}

    def fake_run(args: list[str], env: dict[str, str], check: bool) -> subprocess.CompletedProcess[str]:
        calls.append((args, env))
        return subprocess.CompletedProcess(args, 3)

    monkeypatch.setattr(cli, "Stack", Stack)
    monkeypatch.setattr(subprocess, "run", fake_run)
    outcome = CliRunner().invoke(cli.app, ["gate", "wine", "--version", "3"])
    assert outcome.exit_code == 3  # the gate command's own status
    [(args, env)] = calls
    assert args == [sys.executable, "-m", "ml", "gate", "wine", "--version", "3"]
    assert env["MLFLOW_TRACKING_USERNAME"] == "pipeline" and env["AWS_ACCESS_KEY_ID"] == "pipeline-key"
