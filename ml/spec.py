"""Dataset specifications: the one declarative description of a dataset that every consumer reads.

A :class:`DatasetSpec` says how to read the source, which column is the target and which class is
positive, and, for every feature, its kind, unit, description, allowed range or categories and whether
missing values are allowed. The ETL validation schema, the model's preprocessing, the MLflow model
metadata and the prediction API's request schema (and therefore its OpenAPI docs) are all derived from it.

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

DATASETS_DIR = Path(__file__).with_name("datasets")
_IDENTIFIER = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A dataset spec is missing, malformed or inconsistent; the message says which and how to fix it."""


class FeatureKind(StrEnum):
    """How a feature is typed, validated and preprocessed."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One input feature: its documentation and its validation rules."""

    name: str = Field(pattern=_IDENTIFIER, description="Column name in the landed data and the API field.")
    kind: FeatureKind
    description: str = Field(min_length=1)
    unit: str | None = Field(default=None, description="Physical unit, or None for unitless values.")
    minimum: float | None = Field(default=None, description="Inclusive lower bound (numeric only).")
    maximum: float | None = Field(default=None, description="Inclusive upper bound (numeric only).")
    categories: tuple[str, ...] | None = Field(default=None, description="Allowed values (categorical only).")
    nullable: bool = Field(default=False, description="Whether a missing value is acceptable.")
    example: float | str | bool | None = Field(default=None, description="A typical value for the docs.")

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
        if self.kind is FeatureKind.BOOLEAN and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"boolean feature {self.name!r} cannot have minimum/maximum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}")
        return self


class TargetSpec(_Strict):
    """The label column: its name, its classes (as they appear in the data) and the positive one."""

    name: str = Field(pattern=_IDENTIFIER)
    description: str = Field(min_length=1)
    classes: tuple[str, str] = Field(description="The two class labels; binary classification only.")
    positive_class: str

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> TargetSpec:
        if self.positive_class not in self.classes:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of classes {list(self.classes)}")
        if self.classes[0] == self.classes[1]:
            raise ValueError("the two target classes must differ")
        return self

    @property
    def negative_class(self) -> str:
        """The class that is encoded as 0."""
        return self.classes[0] if self.classes[1] == self.positive_class else self.classes[1]

    def label(self, encoded: int) -> str:
        """Return the class label for an encoded prediction (1 = positive class)."""
        return self.positive_class if encoded == 1 else self.negative_class


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
    source: SourceSpec
    target: TargetSpec
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
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
        schema = {
            "target": self.target.model_dump(mode="json", exclude={"description"}),
            "features": [f.model_dump(mode="json", exclude={"description", "unit", "example"}) for f in self.features],
        }
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
