"""Request and response schemas.

The request schema is not written here: :func:`record_model` generates it from the dataset spec stored
with the served model (names, types, units, descriptions, ranges, categories, examples), so validation
and the OpenAPI docs always describe the model that is being served. The response schemas are fixed.

Rules of the generated record model (``extra="forbid"``):

* numeric feature: a JSON number (an integer is fine), finite, within ``[minimum, maximum]``;
* integer feature: a whole number (``2`` or ``2.0``, as JSON Schema's ``integer`` allows; ``1.5``, ``"2"`` and
  ``true`` are refused), within ``[minimum, maximum]``;
* boolean feature: ``true`` or ``false`` (not ``0``/``1``, not a string);
* categorical feature: one of the listed categories, exactly;
* a nullable feature may be ``null`` or omitted (missing value); every other feature is required;
* a field the spec does not know is an error (catches typos that would otherwise be silently ignored).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from ml.spec import DatasetSpec, FeatureKind, FeatureSpec


def typed_example(feature: FeatureSpec) -> Any:
    """The spec's example with an integer feature's whole number as a JSON integer (YAML may hold ``3.0``)."""
    example = feature.example
    if feature.kind is FeatureKind.INTEGER and isinstance(example, float) and example.is_integer():
        return int(example)
    return example


def camel(name: str) -> str:
    """``wine_quality`` -> ``WineQuality``: the prefix of a model's schema component names."""
    return "".join(part.capitalize() for part in name.split("_"))


def _description(feature: FeatureSpec) -> str:
    parts = [feature.description.rstrip(".") + "."]
    if feature.unit:
        parts.append(f"Unit: {feature.unit}.")
    if feature.kind.is_number:
        low = "-inf" if feature.minimum is None else f"{feature.minimum:g}"
        high = "+inf" if feature.maximum is None else f"{feature.maximum:g}"
        parts.append(f"Range: [{low}, {high}]." + (" A whole number." if feature.kind is FeatureKind.INTEGER else ""))
    elif feature.kind is FeatureKind.CATEGORICAL:
        parts.append(f"One of: {', '.join(feature.categories or ())}.")
    elif feature.kind is FeatureKind.BOOLEAN:
        parts.append("true or false.")
    parts.append("May be null or omitted (missing value)." if feature.nullable else "Required.")
    return " ".join(parts)


def _whole_number(value: Any) -> Any:
    """A float with no fractional part as the int it is (``2.0`` -> ``2``); a fractional one is refused."""
    if isinstance(value, float) and math.isfinite(value):
        if not value.is_integer():
            raise PydanticCustomError(
                "int_from_float", "Input should be a whole number, got {value} (a number with a fractional part)",
                {"value": value},
            )  # fmt: skip
        return int(value)
    return value


#: An integer feature's type: JSON Schema's ``integer`` (any number with no fractional part), strict otherwise.
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _field(feature: FeatureSpec) -> tuple[Any, Any]:
    extra: dict[str, Any] = {"x-kind": feature.kind.value}
    if feature.unit:
        extra["x-unit"] = feature.unit
    common: dict[str, Any] = {
        "alias": feature.name,
        "title": feature.title or feature.name.replace("_", " ").capitalize(),
        "description": _description(feature),
        "json_schema_extra": extra,
    }
    example = typed_example(feature)
    if example is not None:
        common["examples"] = [example]
    annotation: Any
    if feature.kind is FeatureKind.NUMERIC:
        annotation = float
        common.update(strict=True, allow_inf_nan=False, ge=feature.minimum, le=feature.maximum)
    elif feature.kind is FeatureKind.INTEGER:  # whole numbers only: 1.5 is refused, naming the field
        annotation = WholeNumber
        low, high = feature.minimum, feature.maximum
        common.update(
            strict=True, ge=None if low is None else math.ceil(low), le=None if high is None else math.floor(high)
        )
    elif feature.kind is FeatureKind.BOOLEAN:
        annotation = bool
        common.update(strict=True)
    else:
        annotation = Literal[tuple(feature.categories or ())]
    if feature.nullable:
        return annotation | None, Field(default=None, **common)
    return annotation, Field(**common)


def record_model(spec: DatasetSpec) -> type[BaseModel]:
    """A pydantic model of one input record of ``spec``, with the spec's documentation and rules.

    Attributes are named ``f0, f1, ...`` in spec order (the JSON names are aliases), so any feature name is
    allowed and ``record.__dict__.values()`` is the model's input row in the right order.
    """
    example = {f.name: typed_example(f) for f in spec.features if f.example is not None}
    config = ConfigDict(
        extra="forbid",
        title=f"{camel(spec.name)}Record",
        json_schema_extra={"examples": [example]} if example else None,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    # Values typed Any: mypy matches a ** mapping against create_model's named parameters (__config__, ...) too.
    fields: dict[str, Any] = {f"f{i}": _field(feature) for i, feature in enumerate(spec.features)}
    return create_model(
        f"{camel(spec.name)}Record",
        __config__=config,
        __doc__=f"One input record of {spec.title}. {spec.description}",
        **fields,
    )


# -------------------------------------------------------------------------------------------------------------
# Responses (fixed shapes; the label's allowed values are filled in per model in the OpenAPI document)
# -------------------------------------------------------------------------------------------------------------
class ServedModel(BaseModel):
    """Which registered model version produced a prediction."""

    name: str = Field(examples=["breast_cancer_classifier"])
    version: str = Field(examples=["3"])
    alias: str = Field(examples=["champion"])


class Prediction(BaseModel):
    """The prediction for one record."""

    model_config = ConfigDict(populate_by_name=True)

    class_: int = Field(alias="class", description="Encoded class: 1 = the positive class, 0 = the other.")
    label: str = Field(description="The class label, as in the training data.")
    probability: float = Field(ge=0, le=1, description="Probability of the predicted class.")
    probabilities: dict[str, float] = Field(description="Probability of every class, by label.")


class PredictionResponse(Prediction):
    """Answer of POST /predict."""

    model: ServedModel


class BatchPredictionResponse(BaseModel):
    """Answer of POST /predict/batch: one prediction per record, in request order."""

    predictions: list[Prediction]
    model: ServedModel


class ErrorItem(BaseModel):
    r"""One invalid input: where (``loc``, ``field``) and why (``msg``, ``type``), with the ``input`` echoed.

    Echoed keys and values are made safe: strings truncated to 100 characters (keys to 64) with control,
    bidi and other invisible characters escaped (``\u202e``), integers beyond 2**53 and NaN/Infinity as
    strings, objects and arrays as ``"object"``/``"array"``.
    """

    loc: list[str | int] = Field(examples=[["body", "records", 3, "mean_radius"]])
    field: str = Field(examples=["records[3].mean_radius"])
    msg: str = Field(examples=["Input should be less than or equal to 60"])
    type: str = Field(examples=["less_than_equal"])
    input: Any = None


class ValidationErrorResponse(BaseModel):
    """Answer 422 (the request does not match the served model's schema) and 415 (the body is not JSON)."""

    message: str = Field(examples=["1 invalid field: mean_radius: Input should be less than or equal to 60"])
    detail: list[ErrorItem]
    truncated: bool | None = Field(
        default=None,
        description="true when validation stopped at the first 50 errors (the list then has 50 items).",
    )


class ErrorResponse(BaseModel):
    """Any other error: what went wrong and, when possible, what to do about it."""

    detail: str
    hint: str | None = None


class ReloadResponse(BaseModel):
    """Answer of POST /model/reload."""

    outcome: Literal["loaded", "unchanged", "failed"]
    detail: str
    model: dict[str, Any] | None = Field(description="The model served after the reload (name, version, alias).")
    previous: dict[str, Any] | None = None


class ModelSummary(BaseModel):
    """One served model in GET /models."""

    name: str = Field(description="Dataset name: the {name} of /models/{name}/...", examples=["wine"])
    registered_model: str = Field(examples=["wine_classifier"])
    task: Literal["binary", "multiclass", "regression"] | None = Field(description="None until known.")
    title: str | None
    version: str | None = Field(description="Registry version served (None: no champion loaded).")
    alias: str
    data_version: str | None
    metrics: dict[str, Any] | None = Field(description="CV metric and score, test metrics (None without a model).")
    status: Literal["serving", "gated_out", "unavailable"]
    reason: str | None = Field(description="Why nothing is served: the gate's reason or the last error.")
    links: dict[str, str]
    target: dict[str, Any] | None = Field(default=None, description="Classes, or unit and range of a regressor.")
    loaded_from: Literal["registry", "cache"] | None = None


class ModelList(BaseModel):
    """Answer of GET /models."""

    default: str = Field(description="The model of the legacy routes (/predict, /model...): MLOPS_API_DEFAULT_MODEL.")
    models: list[ModelSummary]
    discovery: dict[str, Any] = Field(description="The last registry listing: when, ok, error, models found.")


class ReadyResponse(BaseModel):
    """Answer of GET /ready: whether a model is loaded, from where, and the state of the registry."""

    ready: bool
    message: str
    model: dict[str, Any] | None = Field(
        description="The served version, where it was loaded from (loaded_from.kind: registry or cache) and when "
        "the registry last confirmed it."
    )
    registry: dict[str, Any]
    cache: dict[str, Any] = Field(description="Where the champion cache is read and written (local, s3).")
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Every served model by name: ready (loaded) and version."
    )
