"""The model bundle: the model, its dataset spec and its validator, built together and never changed.

A bundle is what the service swaps when a new champion appears: requests take the current bundle once
and use its validator, its encoder and its estimator, so a request is never validated against one
model's schema and predicted by another. The OpenAPI document is generated from the bundle too.

The model input is built as :mod:`ml.model.matrix` defines it (the contract shared with training):
a 2-D NumPy array with one column per spec feature in spec order, ``float64`` when the spec has no
categorical feature (missing = NaN, booleans 1.0/0.0), otherwise ``object`` with numbers as floats,
booleans as 1.0/0.0, categories as ``str`` and missing values as NaN. No pandas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.fast_pipeline import UnsupportedPipelineError, compile_pipeline, verify
from api.model_loader import ModelFormatError, load_estimator, parse_mlmodel, sklearn_flavor
from api.registry_client import ModelRef
from api.schemas import record_model, typed_example
from ml.contracts import ModelMetadata
from ml.spec import DatasetSpec, FeatureKind, FeatureSpec, SpecError, parse_spec
from ml.tasks import TaskType

Row = list[Any]


def _encoder(feature: FeatureSpec) -> Callable[[Any], Any]:
    if feature.kind is FeatureKind.CATEGORICAL:
        return lambda v: math.nan if v is None else v
    return lambda v: math.nan if v is None else float(v)


def _smoke_value(feature: FeatureSpec) -> Any:
    """A valid value for a self-test prediction: the spec's example, else a value inside the rules."""
    if feature.example is not None:
        return typed_example(feature)
    if feature.nullable:
        return None
    if feature.kind is FeatureKind.CATEGORICAL:
        return (feature.categories or ("",))[0]
    if feature.kind is FeatureKind.BOOLEAN:
        return False
    if feature.kind is FeatureKind.INTEGER:
        return round(feature.minimum if feature.minimum is not None else (feature.maximum or 0))
    return feature.minimum if feature.minimum is not None else (feature.maximum if feature.maximum is not None else 0)


@dataclass(frozen=True)
class ModelOrigin:
    """Where a bundle's files came from: the registry (MLflow) or a champion cache snapshot (local or S3)."""

    kind: Literal["registry", "cache"]
    location: str
    observed_at: float | None = None  # cache: when the registry last named this version (per the snapshot)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "kind": self.kind,
            "location": self.location,
            "observed_at": None if self.observed_at is None else _iso(self.observed_at),
        }


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """One servable model version: estimator, spec, validators and descriptions, immutable."""

    ref: ModelRef
    spec: DatasetSpec
    estimator: Any
    metadata: ModelMetadata
    mlmodel: dict[str, Any]
    record_model: type[BaseModel]
    batch_adapter: TypeAdapter[list[Any]]
    classes: tuple[int, ...]
    labels: tuple[str, ...]
    float_input: bool
    sklearn_config: dict[str, bool]
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    served: dict[str, str] = field(default_factory=dict)
    inference: str = "scikit-learn pipeline"
    origin: ModelOrigin | None = None  # None: the registry, at ref.artifact_uri
    _encoders: tuple[Callable[[Any], Any], ...] = ()
    task: TaskType = TaskType.BINARY
    _output: Callable[[np.ndarray], np.ndarray] | None = None  # the verified shortcut of predict_proba / predict

    # ------------------------------------------------------------------------------------------- input
    def parse_record(self, body: bytes) -> Row:
        """Validate one JSON record; returns its input row. Raises pydantic's ``ValidationError``."""
        return list(self.record_model.model_validate_json(body).__dict__.values())

    def parse_records(self, records: list[Any]) -> list[Row]:
        """Validate already-decoded records; returns their input rows. Raises pydantic's ``ValidationError``."""
        return [list(r.__dict__.values()) for r in self.batch_adapter.validate_python(records)]

    def matrix(self, rows: Sequence[Row]) -> np.ndarray:
        """The model input array for validated rows (see the module docstring for the contract)."""
        if self.float_input:  # NumPy turns None into NaN and booleans into 1.0/0.0 itself
            return np.array(rows, dtype=np.float64)
        encoders = self._encoders
        return np.array([[enc(v) for enc, v in zip(encoders, row, strict=True)] for row in rows], dtype=object)

    # ------------------------------------------------------------------------------------------- output
    @property
    def is_classifier(self) -> bool:
        """Binary and multi-class models answer labels and probabilities; regressors answer a value."""
        return self.task.is_classification

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in :attr:`classes` order (classifiers only)."""
        from sklearn import config_context

        predict = self._output or self.estimator.predict_proba
        with config_context(**self.sklearn_config):
            return np.asarray(predict(x))

    def predict_values(self, x: np.ndarray) -> np.ndarray:
        """Predicted values, one per row (regressors only)."""
        from sklearn import config_context

        predict = self._output or self.estimator.predict
        with config_context(**self.sklearn_config):
            return np.asarray(predict(x), dtype=np.float64).reshape(-1)

    def predictions(self, x: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
        """One prediction dict per row and, per row, the index of its label in :attr:`count_labels`.

        Classifiers: ``class``, ``label``, ``probability`` and ``probabilities`` by label; the predicted
        class is the most probable one, so that ``probability`` is always that class's. Regressors:
        ``value`` and ``unit`` (every row counts under the one label ``value``).
        """
        if not self.is_classifier:
            values = self.predict_values(x).tolist()
            unit = self.spec.target.unit
            return [{"value": v, "unit": unit} for v in values], np.zeros(len(values), dtype=np.intp)
        proba = self.predict_proba(x)
        best = proba.argmax(axis=1)
        classes, labels = self.classes, self.labels
        rows = proba.tolist()
        out = [
            {
                "class": classes[i],
                "label": labels[i],
                "probability": p[i],
                "probabilities": dict(zip(labels, p, strict=True)),
            }
            for i, p in zip(best.tolist(), rows, strict=True)
        ]
        return out, best

    @property
    def count_labels(self) -> tuple[str, ...]:
        """What predictions are counted by in the metrics: the class labels, or ``("value",)`` for a regressor."""
        return self.labels if self.is_classifier else ("value",)

    # ------------------------------------------------------------------------------------------- description
    def target_description(self) -> dict[str, Any]:
        """The target: its classes (and positive class), or its unit and plausible range."""
        return _target_of(self.spec)

    @property
    def source_origin(self) -> ModelOrigin:
        """Where the files came from (the registry unless the bundle was built from a cache snapshot)."""
        return self.origin or ModelOrigin("registry", self.ref.artifact_uri)

    def describe(self) -> dict[str, Any]:
        """Everything GET /model tells: identity, origin, training metrics, data version and feature spec."""
        meta = self.metadata
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "alias": self.ref.alias,
            "uri": self.ref.uri,
            "run_id": self.ref.run_id,
            "model_id": self.ref.model_id,
            "source": self.ref.source,
            "artifact_uri": self.ref.artifact_uri,
            "registered_at_ms": self.ref.created_ms,
            "loaded_at": _iso(self.loaded_at),
            "load_seconds": round(self.load_seconds, 3),
            "loaded_from": self.source_origin.as_dict(),
            "inference": self.inference,
            "family": meta.family,
            "metrics": {"metric": meta.metric, "cv_score": meta.cv_score, "test": meta.test_metrics},
            "data_version": meta.data_version,
            "schema_hash": meta.schema_hash,
            "dataset": self.spec.name,
            "task": self.task.value,
            "classes": dict(zip(self.labels, self.classes, strict=True)),
            "target": self.target_description(),
            "registry_tags": self.ref.tags,
            "mlflow_version": self.mlmodel.get("mlflow_version"),
            "sklearn_version": ((self.mlmodel.get("flavors") or {}).get("sklearn") or {}).get("sklearn_version"),
            "dataset_spec": self.spec.model_dump(mode="json"),
        }


def _target_of(spec: DatasetSpec) -> dict[str, Any]:
    """The target as GET /models tells it: classes for a classifier, unit and range for a regressor."""
    target = spec.target
    described: dict[str, Any] = {"name": target.name, "title": target.title or target.name}
    if spec.task.is_classification:
        described["classes"] = list(target.labels)
        if spec.task is TaskType.BINARY:
            described["positive_class"] = target.positive_class
    else:
        described.update(unit=target.unit, minimum=target.minimum, maximum=target.maximum)
    return described


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _sample_rows(bundle: ModelBundle, count: int = 64, seed: int = 0) -> list[Row]:
    """Valid records covering every feature (and missing values where allowed), to verify the shortcut."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        record: dict[str, Any] = {}
        for feature in bundle.spec.features:
            if feature.nullable and i % 4 == 1:
                record[feature.name] = None
            elif feature.kind is FeatureKind.BOOLEAN:
                record[feature.name] = bool(rng.random() < 0.5)
            elif feature.kind is FeatureKind.CATEGORICAL:
                record[feature.name] = str(rng.choice(list(feature.categories or ())))
            else:
                centre = float(feature.example) if isinstance(feature.example, int | float) else 0.0
                low = feature.minimum
                if low is None:
                    low = min(centre, feature.maximum if feature.maximum is not None else centre) - 100.0
                high = feature.maximum if feature.maximum is not None else max(low, centre) + 100.0
                value = float(rng.uniform(low, high))
                whole = feature.kind is FeatureKind.INTEGER
                record[feature.name] = min(max(round(value), math.ceil(low)), math.floor(high)) if whole else value
        records.append(record)
    return bundle.parse_records(records)


def _with_shortcut(bundle: ModelBundle) -> ModelBundle:
    """The bundle predicting through the verified NumPy preprocessing, or unchanged (with the reason)."""
    from sklearn import config_context

    categorical = {i for i, f in enumerate(bundle.spec.features) if f.kind is FeatureKind.CATEGORICAL}
    method = _method(bundle.task)
    try:
        compiled = compile_pipeline(bundle.estimator, categorical)
        with config_context(**bundle.sklearn_config):
            verify(compiled, bundle.estimator, bundle.matrix(_sample_rows(bundle)), method)
    except UnsupportedPipelineError as exc:
        object.__setattr__(bundle, "inference", f"scikit-learn pipeline (no shortcut: {exc})")
        return bundle
    except Exception as exc:  # anything unexpected while checking: the plain pipeline is always right
        reason = f"verification failed: {type(exc).__name__}: {exc}"
        object.__setattr__(bundle, "inference", f"scikit-learn pipeline (no shortcut: {reason})")
        return bundle
    object.__setattr__(bundle, "_output", compiled.output(method))
    object.__setattr__(bundle, "inference", f"{compiled.description} (verified against the pipeline)")
    return bundle


def _method(task: TaskType) -> str:
    """The estimator method a task's answers come from."""
    return "predict_proba" if task.is_classification else "predict"


def _read_spec(ref: ModelRef, mlmodel: dict[str, Any]) -> tuple[ModelMetadata, DatasetSpec]:
    """The model's metadata and dataset spec from its MLmodel file; :class:`ModelFormatError` if unusable."""
    raw_metadata = mlmodel.get("metadata") or {}
    if not isinstance(raw_metadata, dict) or "dataset_spec" not in raw_metadata:
        raise ModelFormatError(
            "the model's MLmodel metadata has no 'dataset_spec': log models with ml.search_finish.finish_search "
            "(mlflow.sklearn.log_model(..., metadata=ModelMetadata(dataset_spec=spec, ...).model_dump(mode='json')))"
        )
    try:
        metadata = ModelMetadata.model_validate(raw_metadata)
    except ValidationError as exc:
        raise ModelFormatError(
            f"the model's MLmodel metadata does not match ml.contracts.ModelMetadata: {exc}"
        ) from None
    try:
        return metadata, parse_spec(metadata.dataset_spec, origin=f"{ref.uri} v{ref.version}")
    except SpecError as exc:
        raise ModelFormatError(str(exc)) from None


def _check_estimator(estimator: Any, spec: DatasetSpec) -> tuple[int, ...]:
    """The estimator's encoded classes (empty for a regressor) if it fits the spec's task and features."""
    method = _method(spec.task)
    if not hasattr(estimator, method):
        raise ModelFormatError(
            f"the model ({type(estimator).__name__}) has no {method}, which a {spec.task.value} model needs: "
            "log a scikit-learn " + ("classifier" if spec.task.is_classification else "regressor") + " pipeline"
        )
    n_in = getattr(estimator, "n_features_in_", len(spec.features))
    if n_in != len(spec.features):
        raise ModelFormatError(f"the model expects {n_in} input columns but its dataset spec has {len(spec.features)}")
    if not spec.task.is_classification:
        return ()
    labels = spec.target.labels
    classes = tuple(int(c) for c in getattr(estimator, "classes_", range(len(labels))))
    if classes != tuple(range(len(labels))):
        raise ModelFormatError(
            f"the model's classes are {classes}; expected the encoded target 0..{len(labels) - 1}, the indexes of "
            f"the spec's classes {list(labels)} (train on ml.model.to_target's encoding)"
        )
    return classes


def _self_test(bundle: ModelBundle) -> None:
    """Predict the spec's example and compare with the scikit-learn pipeline; :class:`ModelFormatError` if off."""
    from sklearn import config_context

    smoke = bundle.record_model.model_validate({f.name: _smoke_value(f) for f in bundle.spec.features})
    x = bundle.matrix([list(smoke.__dict__.values())])
    try:
        bundle.predictions(x)
        method = _method(bundle.task)
        ours = bundle.predict_proba(x) if bundle.is_classifier else bundle.predict_values(x)
        with config_context(**bundle.sklearn_config):
            theirs = np.asarray(getattr(bundle.estimator, method)(x), dtype=np.float64).reshape(ours.shape)
    except Exception as exc:
        raise ModelFormatError(f"a test prediction on the spec's example failed: {type(exc).__name__}: {exc}") from None
    if bundle.is_classifier and ours.shape != (1, len(bundle.labels)):
        raise ModelFormatError(f"the model answers {ours.shape[-1]} probabilities for {len(bundle.labels)} classes")
    if not np.all(np.isfinite(ours)) or not np.allclose(ours, theirs, rtol=1e-9, atol=1e-12):
        raise ModelFormatError(
            f"a test prediction on the spec's example differs from the pipeline's: {ours} vs {theirs}"
        )


def build_bundle(
    ref: ModelRef,
    mlmodel_bytes: bytes,
    fetch_model: Callable[[str], bytes],
    fast_preprocessing: bool = True,
    origin: ModelOrigin | None = None,
) -> ModelBundle:
    """Build and self-test a bundle from ``MLmodel`` and a function that downloads a file by name.

    Raises :class:`ModelFormatError` when the files are not a servable model: wrong flavor or format,
    untrusted types, no dataset spec in the metadata, a spec that does not match the estimator (features,
    task, classes), or a self-test prediction that fails or differs from the pipeline's. Nothing is swapped
    in that case.
    """
    started = time.perf_counter()
    mlmodel = parse_mlmodel(mlmodel_bytes)
    flavor = sklearn_flavor(mlmodel)
    metadata, spec = _read_spec(ref, mlmodel)
    estimator = load_estimator(fetch_model(flavor.filename), flavor)
    classes = _check_estimator(estimator, spec)
    has_nullable = any(f.nullable for f in spec.features)
    record = record_model(spec)
    bundle = ModelBundle(
        ref=ref,
        spec=spec,
        estimator=estimator,
        metadata=metadata,
        mlmodel=mlmodel,
        record_model=record,
        batch_adapter=TypeAdapter(list[record]),  # type: ignore[valid-type]
        classes=classes,
        labels=tuple(spec.target.label(c) for c in classes),
        float_input=not spec.features_of(FeatureKind.CATEGORICAL),
        # Every value is validated (finite, in range) before prediction, so the per-call finiteness scan can
        # be skipped, unless NaN is a legal (missing) value; parameters were validated when fitting.
        sklearn_config={"assume_finite": not has_nullable, "skip_parameter_validation": True},
        served={"name": ref.name, "version": ref.version, "alias": ref.alias},
        origin=origin,
        task=spec.task,
        _encoders=tuple(_encoder(f) for f in spec.features),
    )
    if fast_preprocessing:
        bundle = _with_shortcut(bundle)
    _self_test(bundle)
    object.__setattr__(bundle, "load_seconds", time.perf_counter() - started)
    return bundle
