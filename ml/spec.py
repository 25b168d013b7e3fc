"""Dataset specifications: the one declarative description of a dataset that every consumer reads.

A :class:`DatasetSpec` says how to read the source, what the model predicts (its ``task``: binary,
multi-class or regression, see :mod:`ml.tasks`), which column is the target (its classes, or its unit),
how the registry gate judges a model (``training``: metric, first-model threshold, promotion margin), and,
for every feature, its kind, title, unit, description, allowed range or categories (with the codes the
data uses for them) and whether missing values are allowed. The ETL validation schema, the model's
preprocessing, the MLflow model metadata and the prediction API's request schema (and therefore its
OpenAPI docs) are all derived from it.

Specs live as YAML files in ``ml/datasets/``; adding a dataset means adding a file there (and a reader in
:mod:`ml.readers` if the source format is new). This module imports only pydantic and PyYAML so the
prediction API and the Lambda can use it without the ML stack.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml.tasks import DEFAULT_MARGIN, DEFAULT_MIN_SCORE, MetricInfo, TaskType, default_metric, metric_info

DATASETS_DIR = Path(__file__).with_name("datasets")
_IDENTIFIER = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A dataset spec is missing, malformed or inconsistent; the message says which and how to fix it."""


class FeatureKind(StrEnum):
    """How a feature is typed, validated and preprocessed."""

    NUMERIC = "numeric"
    INTEGER = "integer"  # whole numbers (counts): validated and served as integers, modelled as numbers
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"

    @property
    def is_number(self) -> bool:
        """Numeric and integer features: ranges apply, the model scales them."""
        return self in (FeatureKind.NUMERIC, FeatureKind.INTEGER)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _code_key(value: object) -> str:
    """The lookup key of a coded value: ``1``, ``1.0`` and ``"1.0"`` are the same code."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(int(number)) if number.is_integer() else repr(number)


def _split_codes(data: Any, field: str) -> Any:
    """Accept ``categories``/``classes`` as a list of labels or as a mapping ``{code in the data: label}``.

    Several codes may map to one label (e.g. disease grades 1-4 to ``present``); labels keep their first order.
    """
    if isinstance(data, dict) and isinstance(data.get(field), dict):
        mapping = data[field]
        labels = tuple(dict.fromkeys(str(v) for v in mapping.values()))  # several codes may share a label
        data = {**data, field: labels}
        data["codes"] = {str(k): str(v) for k, v in mapping.items()}
    return data


class _Coded(_Strict):
    """Something whose values the data may spell as codes (``1.0``) that the spec maps to labels."""

    codes: dict[str, str] | None = Field(
        default=None,
        description="Code in the data -> label, filled from a mapping given as 'categories'/'classes'.",
    )

    def decode(self, value: object) -> object:
        """The label of a coded value; anything that is not a known code is returned unchanged."""
        if not self.codes or value is None:
            return value
        lookup = {_code_key(k): v for k, v in self.codes.items()}
        return lookup.get(_code_key(value), value)


class FeatureSpec(_Coded):
    """One input feature: its documentation and its validation rules."""

    name: str = Field(pattern=_IDENTIFIER, description="Column name in the landed data and the API field.")
    kind: FeatureKind
    title: str | None = Field(default=None, description="Human-readable name for the docs (default: the name).")
    description: str = Field(min_length=1)
    unit: str | None = Field(default=None, description="Physical unit, or None for unitless values.")
    minimum: float | None = Field(default=None, description="Inclusive lower bound (numeric only).")
    maximum: float | None = Field(default=None, description="Inclusive upper bound (numeric only).")
    categories: tuple[str, ...] | None = Field(default=None, description="Allowed values (categorical only).")
    nullable: bool = Field(default=False, description="Whether a missing value is acceptable.")
    example: bool | int | float | str | None = Field(default=None, description="A typical value for the docs.")

    @model_validator(mode="before")
    @classmethod
    def _coded_categories(cls, data: Any) -> Any:
        return _split_codes(data, "categories")

    @model_validator(mode="after")
    def _rules_match_kind(self) -> FeatureSpec:
        if self.kind is FeatureKind.CATEGORICAL:
            if not self.categories:
                raise ValueError(f"categorical feature {self.name!r} needs a non-empty 'categories' list")
            if self.minimum is not None or self.maximum is not None:
                raise ValueError(f"categorical feature {self.name!r} cannot have minimum/maximum")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"categorical feature {self.name!r} lists a category twice")
        elif self.categories is not None:
            raise ValueError(f"{self.kind.value} feature {self.name!r} cannot have 'categories'")
        if self.kind is FeatureKind.INTEGER:
            for bound in (self.minimum, self.maximum, self.example):
                if isinstance(bound, float) and not bound.is_integer():
                    raise ValueError(f"integer feature {self.name!r}: {bound} is not a whole number")
        if self.kind is FeatureKind.BOOLEAN and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"boolean feature {self.name!r} cannot have minimum/maximum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}")
        return self


class TargetSpec(_Coded):
    """The label column: its classes (and a binary task's positive one), or a regression's unit and range.

    Classes are labels; give a mapping ``{code in the data: label}`` when the data codes them.
    """

    name: str = Field(pattern=_IDENTIFIER)
    title: str | None = Field(default=None, description="Human-readable name for the docs (default: the name).")
    description: str = Field(min_length=1)
    classes: tuple[str, ...] | None = Field(
        default=None, description="Class labels (classification only); a mapping {code in the data: label} also works."
    )
    positive_class: str | None = Field(default=None, description="The class F1 and friends score (binary only).")
    unit: str | None = Field(default=None, description="Unit of the predicted value (regression only).")
    minimum: float | None = Field(default=None, description="Lowest plausible value (regression only).")
    maximum: float | None = Field(default=None, description="Highest plausible value (regression only).")

    @model_validator(mode="before")
    @classmethod
    def _coded_classes(cls, data: Any) -> Any:
        return _split_codes(data, "classes")

    @model_validator(mode="after")
    def _classes_distinct(self) -> TargetSpec:
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"target {self.name!r} lists a class twice: {list(self.classes)}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"target {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}")
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels in model order (the encoded class ``i`` is ``labels[i]``); empty for a regression.

        Binary: the negative class first, so that 1 is the positive class.
        """
        if not self.classes:
            return ()
        if self.positive_class is not None and len(self.classes) == 2:
            return (self.negative_class, self.positive_class)
        return self.classes

    @property
    def negative_class(self) -> str:
        """The class that is encoded as 0 (binary only)."""
        if self.classes is None or self.positive_class is None or len(self.classes) != 2:
            raise ValueError(f"target {self.name!r} is not binary: it has no negative class")
        return self.classes[0] if self.classes[1] == self.positive_class else self.classes[1]

    def label(self, encoded: int) -> str:
        """Return the class label of an encoded prediction (binary: 1 = positive class)."""
        return self.labels[encoded]


class TrainingSpec(_Strict):
    """How models of this dataset are scored and gated; anything left out takes the task's default."""

    metric: str | None = Field(
        default=None, description="Cross-validation metric of the search and the gate (default: the task's)."
    )
    min_champion_score: float | None = Field(
        default=None,
        description="The first model becomes champion only if its score is at least this good (default: the task's; "
        "regression: none, the first model must then beat the training mean's score).",
    )
    promotion_margin: float | None = Field(
        default=None, ge=0, description="A challenger must beat the champion by at least this much in the metric."
    )


class SourceSpec(_Strict):
    """Where the raw data comes from and how to read it; ``reader`` names a function in :mod:`ml.readers`."""

    reader: str = Field(description="Reader name registered in ml.readers, e.g. 'sklearn' or 'csv'.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the reader.")
    citation: str | None = None


class DatasetSpec(_Strict):
    """The complete, declarative description of one dataset."""

    name: str = Field(pattern=_IDENTIFIER)
    title: str
    description: str
    task: TaskType = Field(default=TaskType.BINARY, description="binary, multiclass or regression.")
    source: SourceSpec
    target: TargetSpec
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    model_name: str | None = Field(
        default=None, description="Registered model name (default: <name>_classifier or <name>_regressor)."
    )
    id_column: str | None = Field(default=None, description="Optional row identifier kept out of the model.")

    @field_validator("features")
    @classmethod
    def _unique_names(cls, features: tuple[FeatureSpec, ...]) -> tuple[FeatureSpec, ...]:
        seen: set[str] = set()
        for feature in features:
            if feature.name in seen:
                raise ValueError(f"feature {feature.name!r} is listed twice")
            seen.add(feature.name)
        return features

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DatasetSpec:
        if self.target.name in self.feature_names:
            raise ValueError(f"target {self.target.name!r} is also listed as a feature")
        return self

    @model_validator(mode="after")
    def _target_fits_task(self) -> DatasetSpec:
        target, task = self.target, self.task
        classes = list(target.classes or ())
        if task is TaskType.REGRESSION:
            if target.classes is not None or target.positive_class is not None:
                raise ValueError(
                    "a regression target has no classes and no positive_class: remove target.classes and "
                    "target.positive_class, or set task: binary / multiclass"
                )
        else:
            if target.unit is not None or target.minimum is not None or target.maximum is not None:
                raise ValueError(f"a {task.value} target has no unit/minimum/maximum (regression only): remove them")
            if len(classes) < 2:
                raise ValueError(
                    f"a {task.value} target needs at least two classes in target.classes, got {classes}; "
                    "a single class cannot be learned"
                )
        if task is TaskType.BINARY:
            if len(classes) != 2:
                raise ValueError(f"task binary needs exactly two classes, got {len(classes)}: use task: multiclass")
            if target.positive_class is None:
                raise ValueError(f"task binary needs target.positive_class, one of {classes}")
            if target.positive_class not in classes:
                raise ValueError(f"positive_class {target.positive_class!r} is not one of classes {classes}")
        if task is TaskType.MULTICLASS:
            if len(classes) < 3:
                raise ValueError(f"task multiclass needs at least three classes, got {classes}: use task: binary")
            if target.positive_class is not None:
                raise ValueError("a multiclass target has no positive_class: remove target.positive_class")
        if self.training.metric is not None:
            metric_info(task, self.training.metric)  # raises with the allowed metrics
        threshold = self.training.min_champion_score
        bounded = task.is_classification and self.metric.greater_is_better  # scores in [0, 1]
        if threshold is not None and bounded and not 0 <= threshold <= 1:
            raise ValueError(f"training.min_champion_score {threshold} must lie in [0, 1] for {self.metric.name}")
        return self

    @property
    def metric(self) -> MetricInfo:
        """The cross-validation metric of the search and the gate."""
        return metric_info(self.task, self.training.metric) if self.training.metric else default_metric(self.task)

    @property
    def min_champion_score(self) -> float | None:
        """The first-model threshold (None: any first model becomes champion)."""
        if "min_champion_score" in self.training.model_fields_set:
            return self.training.min_champion_score
        return DEFAULT_MIN_SCORE[self.task] if self.metric.greater_is_better else None

    @property
    def promotion_margin(self) -> float:
        """How much a challenger must beat the champion by."""
        margin = self.training.promotion_margin
        return DEFAULT_MARGIN if margin is None else margin

    @property
    def registered_model(self) -> str:
        """The MLflow registered model of this dataset."""
        return self.model_name or f"{self.name}_{self.task.model_suffix}"

    @property
    def feature_names(self) -> list[str]:
        """Feature names in model order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """All columns of the landed data, in order: features then target."""
        return [*self.feature_names, self.target.name]

    def features_of(self, kind: FeatureKind) -> list[FeatureSpec]:
        """Features of one kind, in model order."""
        return [f for f in self.features if f.kind is kind]

    def feature(self, name: str) -> FeatureSpec:
        """Look up one feature by name."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no feature {name!r}; known: {', '.join(self.feature_names)}")

    def example_record(self) -> dict[str, Any]:
        """A complete example input record, built from each feature's ``example``."""
        return {f.name: f.example for f in self.features}

    def fingerprint(self) -> str:
        """A short stable hash of the feature and target schema (not of the prose): the schema hash."""

        def dump(item: BaseModel, prose: set[str], added: set[str]) -> dict[str, Any]:
            data = item.model_dump(mode="json", exclude=prose)
            return {k: v for k, v in data.items() if not (k in added and v is None)}  # fields added later

        schema: dict[str, Any] = {
            "target": dump(self.target, {"description", "title"}, {"codes", "unit", "minimum", "maximum"}),
            "features": [dump(f, {"description", "title", "unit", "example"}, {"codes"}) for f in self.features],
        }
        if self.task is not TaskType.BINARY:  # binary specs keep the hash they had before tasks existed
            schema["task"] = self.task.value
        return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """Serialise for storage with a model (the API rebuilds its request schema from this)."""
        return self.model_dump_json(indent=2)


def parse_spec(data: dict[str, Any] | str, origin: str = "<inline>") -> DatasetSpec:
    """Validate a spec given as a mapping or a JSON string; raise :class:`SpecError` naming each problem."""
    try:
        if isinstance(data, str):
            return DatasetSpec.model_validate_json(data)
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise SpecError(f"invalid dataset spec {origin}: {problems}") from None


def load_spec_file(path: Path) -> DatasetSpec:
    """Read and validate one YAML spec file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read dataset spec {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"dataset spec {path} must be a YAML mapping, got {type(data).__name__}")
    spec = parse_spec(data, origin=str(path))
    if spec.name != path.stem:
        raise SpecError(f"dataset spec {path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


def available_datasets(directory: Path = DATASETS_DIR) -> list[str]:
    """Names of the datasets that ship a spec file."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


@cache
def get_spec(name: str, directory: Path = DATASETS_DIR) -> DatasetSpec:
    """Load the spec of a named dataset from ``ml/datasets/<name>.yaml``."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_datasets(directory)) or "none"
        raise SpecError(f"no dataset spec named {name!r} in {directory} (available: {known})")
    return load_spec_file(path)
