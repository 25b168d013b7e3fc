"""The verified NumPy preprocessing shortcut: used when exact, refused otherwise, same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from api.bundle import _sample_rows, build_bundle
from api.fast_pipeline import UnsupportedPipelineError, compile_pipeline, verify
from api.registry_client import ModelRef
from tests.datasets import MIXED_RECORD, breast_cancer_frame, mixed_frame, mixed_spec, typed_mixed_frame
from tests.unit.api.conftest import ClientFactory

pytestmark = pytest.mark.unit


def _logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=5000)


def _bundle(model_dir: Path, fast: bool = True) -> object:
    ref = ModelRef(name="m", version="1", alias="champion", source="models:/m-1", artifact_uri=model_dir.as_uri())
    return build_bundle(ref, (model_dir / "MLmodel").read_bytes(), lambda n: (model_dir / n).read_bytes(), fast)


@pytest.mark.parametrize("name", ["bc_logreg", "bc_hgb", "mixed"])
def test_the_training_pipelines_get_the_shortcut_with_identical_predictions(
    model_dirs: dict[str, Path], name: str
) -> None:
    fast, slow = _bundle(model_dirs[name]), _bundle(model_dirs[name], fast=False)
    assert fast.inference.startswith("NumPy preprocessing")  # type: ignore[attr-defined]
    assert slow.inference == "scikit-learn pipeline"  # type: ignore[attr-defined]
    x = fast.matrix(_sample_rows(fast, count=200, seed=7))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(fast.predict_proba(x), slow.predict_proba(x))  # type: ignore[attr-defined]


def test_missing_values_and_categories_are_encoded_like_scikit_learn(model_dirs: dict[str, Path]) -> None:
    bundle = _bundle(model_dirs["mixed"])
    records = [MIXED_RECORD, {"income": 10.0, "employment": "retired", "owns_home": False}]
    x = bundle.matrix(bundle.parse_records(records))  # type: ignore[attr-defined]
    assert x.dtype == object and np.isnan(x[1, 1]) and np.isnan(x[1, 3]) and np.isnan(x[1, 4])
    compiled = compile_pipeline(bundle.estimator, {2, 3})  # type: ignore[attr-defined]
    expected = bundle.estimator.steps[0][1].transform(x)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(compiled.transform(x), expected)


def test_other_steps_are_refused(model_dirs: dict[str, Path]) -> None:
    spec, frame = breast_cancer_frame()
    x = frame[spec.feature_names].to_numpy(dtype=float)
    y = (frame[spec.target.name] == "malignant").to_numpy(dtype=int)
    cols = list(range(30))
    minmax = Pipeline([("pre", ColumnTransformer([("n", MinMaxScaler(), cols)])), ("m", _logreg())])
    with pytest.raises(UnsupportedPipelineError, match="not a SimpleImputer"):
        compile_pipeline(minmax.fit(x, y), set())
    indicator = Pipeline(
        [("pre", ColumnTransformer([("n", SimpleImputer(add_indicator=True), cols)])), ("m", _logreg())]
    )
    with pytest.raises(UnsupportedPipelineError, match="indicator"):
        compile_pipeline(indicator.fit(x, y), set())
    passthrough = Pipeline(
        [
            ("pre", ColumnTransformer([("n", StandardScaler(), cols[:5])], remainder="passthrough")),
            ("m", _logreg()),
        ]
    )
    with pytest.raises(UnsupportedPipelineError):
        compile_pipeline(passthrough.fit(x, y), set())
    with pytest.raises(UnsupportedPipelineError, match="two-step Pipeline"):
        compile_pipeline(_logreg().fit(x, y), set())


def test_infrequent_categories_are_refused() -> None:
    spec = mixed_spec()
    frame = typed_mixed_frame(mixed_frame())
    from ml.model import to_matrix, to_target

    x, y = to_matrix(frame, spec), to_target(frame, spec)
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=200, sparse_output=False)
    model = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [("c", Pipeline([("i", SimpleImputer(strategy="most_frequent")), ("o", encoder)]), [2])]
                ),
            ),
            ("m", _logreg()),
        ]
    ).fit(x, y)
    with pytest.raises(UnsupportedPipelineError):
        compile_pipeline(model, {2})


def test_verification_catches_a_difference(model_dirs: dict[str, Path]) -> None:
    bundle = _bundle(model_dirs["bc_logreg"])
    compiled = compile_pipeline(bundle.estimator, set())  # type: ignore[attr-defined]
    x = bundle.matrix(_sample_rows(bundle))  # type: ignore[attr-defined]
    verify(compiled, bundle.estimator, x)  # type: ignore[attr-defined]
    tampered = compiled.__class__((lambda a: compiled.blocks[0](a) * 1.0000001,), compiled.estimator, "tampered")
    with pytest.raises(UnsupportedPipelineError, match="transform differs"):
        verify(tampered, bundle.estimator, x)  # type: ignore[attr-defined]


def test_the_shortcut_can_be_turned_off(make_client: ClientFactory) -> None:
    assert make_client().get("/model").json()["inference"].startswith("NumPy preprocessing")
    assert make_client(fast_preprocessing=False).get("/model").json()["inference"] == "scikit-learn pipeline"


@pytest.mark.parametrize(
    ("minimum", "maximum", "example"),
    [(1000.0, None, None), (None, -500.0, None), (None, None, 7.0), (5.0, 6.0, None), (None, 10.0, 50.0)],
)
def test_sample_records_respect_any_range(
    model_dirs: dict[str, Path], minimum: float | None, maximum: float | None, example: float | None
) -> None:
    bundle = _bundle(model_dirs["bc_logreg"])
    spec = bundle.spec  # type: ignore[attr-defined]
    first = spec.features[0].model_copy(update={"minimum": minimum, "maximum": maximum, "example": example})
    changed = spec.model_copy(update={"features": (first, *spec.features[1:])})
    object.__setattr__(bundle, "spec", changed)
    from pydantic import TypeAdapter

    from api.schemas import record_model

    model = record_model(changed)
    object.__setattr__(bundle, "batch_adapter", TypeAdapter(list[model]))  # type: ignore[valid-type]
    rows = _sample_rows(bundle, count=50)  # type: ignore[arg-type]
    assert len(rows) == 50
