"""Task types in the spec: what each task requires, the metrics' directions, coded values and integer features."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ml.spec import FeatureKind, SpecError, get_spec, parse_spec
from ml.tasks import TaskType, default_metric, metric_info

FEATURE = {"name": "x", "kind": "numeric", "description": "A measurement."}
BASE: dict[str, Any] = {
    "name": "demo",
    "title": "Demo",
    "description": "A demo dataset.",
    "source": {"reader": "csv", "options": {"path": "demo.csv"}},
    "features": [FEATURE],
}
BINARY_TARGET = {"name": "y", "description": "Label.", "classes": ["no", "yes"], "positive_class": "yes"}
MULTI_TARGET = {"name": "y", "description": "Label.", "classes": ["a", "b", "c"]}
REGRESSION_TARGET = {"name": "y", "description": "Amount.", "unit": "EUR", "minimum": 0, "maximum": 10}


def spec(task: str, target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return copy.deepcopy(BASE) | {"task": task, "target": target} | extra


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (spec("multiclass", MULTI_TARGET | {"classes": ["a"]}), r"at least two classes.*a single class cannot"),
        (spec("binary", BINARY_TARGET | {"classes": ["yes"]}), r"at least two classes"),
        (spec("regression", REGRESSION_TARGET | {"positive_class": "yes"}), r"remove target.classes and target.pos"),
        (spec("regression", REGRESSION_TARGET | {"classes": ["a", "b"]}), r"or set task: binary / multiclass"),
        (spec("binary", BINARY_TARGET | {"classes": ["a", "b", "yes"]}), r"two classes, got 3: use task: multiclass"),
        (spec("multiclass", BINARY_TARGET), r"at least three classes.*use task: binary"),
        (spec("multiclass", MULTI_TARGET | {"positive_class": "a"}), r"remove target.positive_class"),
        (spec("binary", BINARY_TARGET | {"unit": "kg"}), r"no unit/minimum/maximum \(regression only\): remove them"),
        (spec("binary", BINARY_TARGET, training={"metric": "rmse"}), r"'rmse' is not available for a binary task"),
        (spec("regression", REGRESSION_TARGET, training={"metric": "f1"}), r"use one of rmse, mae, r2"),
        (spec("binary", BINARY_TARGET, training={"min_champion_score": 3}), r"must lie in \[0, 1\] for f1"),
    ],
)  # fmt: skip
def test_a_target_that_does_not_fit_the_task_says_what_to_change(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(data)


def test_each_task_has_its_metrics_and_defaults() -> None:
    regression = parse_spec(spec("regression", REGRESSION_TARGET))
    assert regression.metric.name == "rmse" and regression.metric.direction == "minimize"
    assert regression.min_champion_score is None  # no floor unless the spec sets one
    assert regression.registered_model == "demo_regressor" and regression.target.labels == ()
    multi = parse_spec(spec("multiclass", MULTI_TARGET, training={"metric": "log_loss", "promotion_margin": 0.01}))
    assert multi.metric.direction == "minimize" and multi.promotion_margin == 0.01
    assert multi.registered_model == "demo_classifier" and multi.target.labels == ("a", "b", "c")
    binary = parse_spec(spec("binary", {**BINARY_TARGET, "classes": ["yes", "no"]}))
    assert binary.metric.name == "f1" and binary.target.labels == ("no", "yes")  # 1 = the positive class
    assert binary.min_champion_score == 0.8  # the task's default


def test_metric_directions_decide_better_and_meets() -> None:
    rmse, f1 = metric_info(TaskType.REGRESSION, "rmse"), default_metric(TaskType.BINARY)
    assert rmse.better(50.0, 55.0, margin=1.0) and not rmse.better(54.5, 55.0, margin=1.0)
    assert not rmse.better(56.0, 55.0)
    assert rmse.meets(60.0, 65.0) and not rmse.meets(70.0, 65.0) and rmse.meets(1e9, None)
    assert rmse.from_scorer(-54.2) == 54.2 and f1.from_scorer(0.9) == 0.9
    assert f1.better(0.92, 0.90, margin=0.01) and not f1.better(0.905, 0.90, margin=0.01)
    assert f1.meets(0.9, 0.9) and not f1.meets(0.89, 0.9)
    assert metric_info(TaskType.MULTICLASS, "roc_auc_ovr").direction == "maximize"


def test_coded_categories_and_classes_decode_to_labels() -> None:
    sex = {"name": "sex", "kind": "categorical", "description": "Coded.", "categories": {1: "sex_1", 2: "sex_2"}}
    data = spec("multiclass", MULTI_TARGET | {"classes": {0: "a", 1: "b", 2: "c"}}, features=[sex])
    parsed = parse_spec(data)
    feature = parsed.feature("sex")
    assert feature.categories == ("sex_1", "sex_2") and feature.codes == {"1": "sex_1", "2": "sex_2"}
    assert [feature.decode(v) for v in (1, 2.0, "1", "1.0", "sex_2", 3, None)] == [
        "sex_1", "sex_2", "sex_1", "sex_1", "sex_2", 3, None,
    ]  # fmt: skip
    assert parsed.target.labels == ("a", "b", "c") and parsed.target.decode(2) == "c"


def test_integer_features_take_whole_bounds_only() -> None:
    age = {"name": "age", "kind": "integer", "description": "Years.", "minimum": 0, "maximum": 120, "example": 40}
    parsed = parse_spec(spec("regression", REGRESSION_TARGET, features=[age]))
    assert parsed.feature("age").kind is FeatureKind.INTEGER and FeatureKind.INTEGER.is_number
    with pytest.raises(SpecError, match=r"integer feature 'age': 0.5 is not a whole number"):
        parse_spec(spec("regression", REGRESSION_TARGET, features=[age | {"minimum": 0.5}]))


@pytest.mark.parametrize(
    ("name", "task", "metric"), [("wine", "multiclass", "f1_macro"), ("diabetes", "regression", "rmse")]
)
def test_the_worked_examples_are_complete(name: str, task: str, metric: str) -> None:
    shipped = get_spec(name)
    assert shipped.task.value == task and shipped.metric.name == metric
    assert shipped.min_champion_score is not None
    for feature in shipped.features:
        assert feature.description and feature.title and feature.example is not None
        if feature.kind.is_number:
            assert feature.minimum is not None and feature.maximum is not None
            assert feature.minimum <= float(feature.example) <= feature.maximum
        else:
            assert feature.example in (feature.categories or ())
