"""The registry gate in both metric directions, its worded reasons, and ``python -m ml gate`` (no retraining)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge

from ml import cli
from ml.contracts import DATASET_TAG, TASK_TAG, SplitManifest
from ml.etl import extract, split, validate
from ml.lake import Lake
from ml.registry import CHALLENGER, CHAMPION, decide_challenger, decide_first, register_and_gate
from ml.settings import MLSettings
from ml.spec import DATASETS_DIR, get_spec
from tests.unit.ml.conftest import isolated, logged

DIABETES = get_spec("diabetes")
WINE = get_spec("wine")


# ------------------------------------------------------------------------------------------------- the rules
def test_a_first_model_must_meet_the_threshold_in_the_metrics_direction() -> None:
    rmse = isolated(DIABETES, min_champion_score=65)
    assert decide_first(rmse, 54.2).promoted
    rejected = decide_first(rmse, 70.25)
    assert not rejected.promoted
    assert rejected.reason == (
        "test rmse 70.25 is above the first-model threshold 65 (training.min_champion_score in "
        "ml/datasets/diabetes.yaml, and lower is better)"
    )
    f1 = isolated(WINE, min_champion_score=0.9)
    assert decide_first(f1, 0.871).reason == (
        "test f1_macro 0.871 is below the first-model threshold 0.9 (training.min_champion_score in "
        "ml/datasets/wine.yaml)"
    )
    assert decide_first(f1, 0.95).promoted
    assert "no first-model threshold is set" in decide_first(isolated(DIABETES, min_champion_score=None), 1e6).reason


def test_without_a_threshold_a_first_model_must_beat_the_baseline() -> None:
    rmse = isolated(DIABETES, min_champion_score=None)
    beats = decide_first(rmse, 54.2, baseline=75.0)
    assert beats.promoted and "beats the baseline's 75 (always predicting the training mean)" in beats.reason
    same = decide_first(rmse, 75.0, baseline=75.0)
    assert not same.promoted
    assert same.reason.startswith("test rmse 75 does not beat the baseline's 75 (always predicting the training mean")
    assert "training.min_champion_score in ml/datasets/diabetes.yaml" in same.reason
    assert not decide_first(rmse, 80.0, baseline=75.0).promoted
    loss = isolated(WINE, metric="log_loss", min_champion_score=None)  # a loss: no default threshold either
    assert decide_first(loss, 0.2, baseline=1.09).promoted and not decide_first(loss, 1.2, baseline=1.09).promoted


def test_a_challenger_must_beat_the_champion_by_the_margin_in_the_metrics_direction() -> None:
    rmse = isolated(DIABETES, promotion_margin=0.5)
    assert decide_challenger(rmse, 53.0, 54.0, "1").promoted  # lower error wins
    assert not decide_challenger(rmse, 53.8, 54.0, "1").promoted  # better, but by less than the margin
    higher = decide_challenger(rmse, 56.0, 54.0, "1")
    assert not higher.promoted
    assert higher.reason == (
        "test rmse 56 does not beat champion v1's 54 by the promotion margin 0.5 (training.promotion_margin in "
        "ml/datasets/diabetes.yaml; lower is better, improvement -2)"
    )
    f1 = isolated(WINE, promotion_margin=0.0)
    assert decide_challenger(f1, 0.97, 0.95, "2").promoted and not decide_challenger(f1, 0.95, 0.95, "2").promoted


# ------------------------------------------------------------------------------------------------- on MLflow
@pytest.fixture
def landed(lake: Lake, ml_env: MLSettings) -> SplitManifest:
    extract(DIABETES, lake)
    return split(DIABETES, lake, ml_env.seed, ml_env.test_size, validate(DIABETES, lake, ml_env.max_invalid_fraction))


def aliases(name: str) -> dict[str, str]:
    return dict(MlflowClient().get_registered_model(name).aliases)


def test_the_lower_rmse_takes_over_and_a_higher_one_does_not(lake, ml_env, landed) -> None:
    spec = isolated(DIABETES, min_champion_score=90, promotion_margin=0.5)
    mean = logged(spec, lake, landed, DummyRegressor(), "dummy")  # RMSE = the target's spread, ~75
    first = register_and_gate(mean, spec, ml_env, lake)
    assert first.promoted and first.direction == "minimize" and 60 < first.challenger_score < 90
    ridge = register_and_gate(logged(spec, lake, landed, Ridge(), "ridge"), spec, ml_env, lake)
    assert ridge.promoted and ridge.challenger_score < ridge.champion_score - 0.5
    worse = register_and_gate(logged(spec, lake, landed, DummyRegressor(), "dummy"), spec, ml_env, lake)
    assert not worse.promoted and worse.champion_version == ridge.version
    assert aliases(spec.registered_model) == {CHAMPION: ridge.version, CHALLENGER: worse.version}
    tags = MlflowClient().get_model_version(spec.registered_model, worse.version).tags
    assert (tags["gate.metric"], tags["gate.direction"], tags["gate.margin"]) == ("rmse", "minimize", "0.5")
    assert tags["gate.min_score"] == "90.0" and tags["gate.reason"] == worse.reason
    model_tags = MlflowClient().get_registered_model(spec.registered_model).tags
    assert (model_tags[DATASET_TAG], model_tags[TASK_TAG]) == ("diabetes", "regression")


def test_a_regression_without_a_threshold_that_learned_nothing_stays_challenger(lake, ml_env, landed) -> None:
    spec = isolated(DIABETES, min_champion_score=None)
    mean = register_and_gate(logged(spec, lake, landed, DummyRegressor(), "dummy"), spec, ml_env, lake)
    assert not mean.promoted and mean.min_score is None
    assert "does not beat the baseline's" in mean.reason and CHAMPION not in aliases(spec.registered_model)
    ridge = register_and_gate(logged(spec, lake, landed, Ridge(), "ridge"), spec, ml_env, lake)
    assert ridge.promoted and "beats the baseline's" in ridge.reason
    assert ridge.challenger_score < mean.challenger_score


def spec_file(tmp_path: Path, model_name: str, **training: float) -> Path:
    """diabetes.yaml with its own registered model and ``training`` settings, as a user would edit it."""
    data = yaml.safe_load((DATASETS_DIR / "diabetes.yaml").read_text())
    data["model_name"] = model_name
    data["training"] |= training
    path = tmp_path / "diabetes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_gate_reruns_with_the_specs_current_threshold(tmp_path, lake, ml_env, landed, capsys) -> None:
    spec = isolated(DIABETES, min_champion_score=40)  # stricter than any model here
    gated_out = register_and_gate(logged(spec, lake, landed, Ridge(), "ridge"), spec, ml_env, lake)
    assert not gated_out.promoted and "is above the first-model threshold 40" in gated_out.reason
    assert cli.main(["gate", str(spec_file(tmp_path, spec.registered_model, min_champion_score=40))]) == 0
    out = capsys.readouterr().out
    assert f"v{gated_out.version}: not promoted" in out and "threshold 40" in out
    # the user lowers the threshold in the spec: the same version is decided again, without retraining
    assert cli.main(["gate", str(spec_file(tmp_path, spec.registered_model, min_champion_score=65)),
                     "--version", gated_out.version]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"v{gated_out.version}: champion" in out and "within the first-model threshold 65" in out
    assert aliases(spec.registered_model) == {CHAMPION: gated_out.version}
    tags = MlflowClient().get_model_version(spec.registered_model, gated_out.version).tags
    assert tags["gate.decision"] == "promoted" and tags["gate.min_score"] == "65.0"


def test_gate_errors_exit_2_with_a_message(tmp_path, lake, ml_env, landed, capsys, monkeypatch) -> None:
    assert cli.main(["gate", "no_such_dataset"]) == 2
    assert "no dataset spec named 'no_such_dataset'" in capsys.readouterr().err
    spec = isolated(DIABETES)
    path = spec_file(tmp_path, spec.registered_model)
    assert cli.main(["gate", str(path)]) == 2
    assert f"registered model {spec.registered_model!r} has no versions" in capsys.readouterr().err
    register_and_gate(logged(spec, lake, landed, Ridge(), "ridge"), spec, ml_env, lake)
    assert cli.main(["gate", str(path), "--version", "7"]) == 2
    assert "has no version 7; it has 1" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        assert cli.main(["gate", str(path)]) == 2
    finally:
        mlflow.set_tracking_uri(ml_env.tracking_uri)
    assert "cannot list the versions" in capsys.readouterr().err
