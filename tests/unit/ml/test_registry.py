import pytest
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from ml.contracts import DATASET_TAG, TASK_TAG, SplitManifest
from ml.etl import extract, split, validate
from ml.lake import Lake
from ml.registry import CHALLENGER, CHAMPION, register_and_gate
from ml.settings import MLSettings
from ml.spec import DatasetSpec, get_spec
from tests.unit.ml.conftest import isolated, logged

SPEC = get_spec("breast_cancer")


@pytest.fixture
def spec() -> DatasetSpec:
    """The breast cancer spec with a registered model of this test's own."""
    return isolated(SPEC)


@pytest.fixture
def landed(lake: Lake, ml_env: MLSettings) -> SplitManifest:
    extract(SPEC, lake)
    return split(SPEC, lake, ml_env.seed, ml_env.test_size, validate(SPEC, lake, ml_env.max_invalid_fraction))


def weak(lake, manifest):
    return logged(SPEC, lake, manifest, DummyClassifier(strategy="stratified", random_state=0), "dummy")


def strong(lake, manifest):
    return logged(SPEC, lake, manifest, LogisticRegression(max_iter=2000), "logreg")


def aliases(name: str) -> dict[str, str]:
    return dict(MlflowClient().get_registered_model(name).aliases)


def test_first_model_below_the_minimum_is_not_champion(lake, ml_env, landed, spec) -> None:
    decision = register_and_gate(weak(lake, landed), spec, ml_env, lake)
    assert not decision.promoted and decision.champion_score is None
    assert "is below the first-model threshold 0.9 (training.min_champion_score in" in decision.reason
    assert aliases(spec.registered_model) == {CHALLENGER: decision.version}
    tags = MlflowClient().get_model_version(spec.registered_model, decision.version).tags
    assert tags["gate.decision"] == "rejected" and tags["gate.champion_score"] == "none"
    assert tags["gate.direction"] == "maximize" and tags["gate.min_score"] == "0.9"
    assert tags["gate.reason"] == decision.reason
    model_tags = MlflowClient().get_registered_model(spec.registered_model).tags
    assert model_tags[DATASET_TAG] == "breast_cancer" and model_tags[TASK_TAG] == "binary"


def test_first_good_model_becomes_champion_and_reruns_are_idempotent(lake, ml_env, landed, spec) -> None:
    result = strong(lake, landed)
    decision = register_and_gate(result, spec, ml_env, lake)
    assert decision.promoted and decision.challenger_score >= spec.min_champion_score
    assert aliases(spec.registered_model) == {CHAMPION: decision.version}
    again = register_and_gate(result, spec, ml_env, lake)
    assert again.version == decision.version and again.promoted
    assert len(MlflowClient().search_model_versions(f"name = '{spec.registered_model}'")) == 1


def test_challenger_must_beat_the_champion_by_the_margin(lake, ml_env, landed) -> None:
    spec = isolated(SPEC, min_champion_score=0.2, promotion_margin=0.01)
    first = register_and_gate(weak(lake, landed), spec, ml_env, lake)
    assert first.promoted  # weak, but above the (lowered) minimum
    better = register_and_gate(strong(lake, landed), spec, ml_env, lake)
    assert better.promoted and better.champion_version == first.version
    assert better.challenger_score - better.champion_score >= 0.01
    assert aliases(spec.registered_model) == {CHAMPION: better.version}
    worse = register_and_gate(weak(lake, landed), spec, ml_env, lake)
    assert not worse.promoted and worse.champion_version == better.version
    assert "does not beat champion" in worse.reason and "promotion margin 0.01" in worse.reason
    assert aliases(spec.registered_model) == {CHAMPION: better.version, CHALLENGER: worse.version}
    tags = MlflowClient().get_model_version(spec.registered_model, worse.version).tags
    assert tags["gate.decision"] == "rejected"
    assert float(tags["gate.champion_score"]) == pytest.approx(better.challenger_score, abs=1e-6)
    assert float(tags["gate.challenger_score"]) == pytest.approx(worse.challenger_score, abs=1e-6)


def test_an_equal_challenger_does_not_take_over(lake, ml_env, landed) -> None:
    spec = isolated(SPEC, promotion_margin=0.0)
    first = register_and_gate(strong(lake, landed), spec, ml_env, lake)
    same = register_and_gate(strong(lake, landed), spec, ml_env, lake)
    assert first.promoted and not same.promoted
    assert same.challenger_score == pytest.approx(same.champion_score)
    assert aliases(spec.registered_model)[CHAMPION] == first.version
