"""Request and response schemas.

The request schema is not written here: :func:`record_model` generates it from the dataset spec stored
with the served model (names, types, units, descriptions, ranges, categories, examples), so validation
and the OpenAPI docs always describe the model that is being served. The response schemas are fixed.

Rules of the generated record model (``extra="forbid"``):

* numeric feature: a JSON number (an integer is fine), finite, within ``[minimum, maximum]``;
* boolean feature: ``true`` or ``false`` (not ``0``/``1``, not a string);
* categorical feature: one of the listed categories, exactly;
* a nullable feature may be ``null`` or omitted (missing value); every other feature is required;
* a field the spec does not know is an error (catches typos that would otherwise be silently ignored).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ml.spec import DatasetSpec, FeatureKind, FeatureSpec


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _description(feature: FeatureSpec) -> str:
    parts = [feature.description.rstrip(".") + "."]
    if feature.unit:
        parts.append(f"Unit: {feature.unit}.")
    if feature.kind is FeatureKind.NUMERIC:
        low = "-inf" if feature.minimum is None else f"{feature.minimum:g}"
        high = "+inf" if feature.maximum is None else f"{feature.maximum:g}"
        parts.append(f"Range: [{low}, {high}].")
    elif feature.kind is FeatureKind.CATEGORICAL:
        parts.append(f"One of: {', '.join(feature.categories or ())}.")
    elif feature.kind is FeatureKind.BOOLEAN:
        parts.append("true or false.")
    parts.append("May be null or omitted (missing value)." if feature.nullable else "Required.")
    return " ".join(parts)


def _field(feature: FeatureSpec) -> tuple[Any, Any]:
    extra: dict[str, Any] = {"x-kind": feature.kind.value}
    if feature.unit:
        extra["x-unit"] = feature.unit
    common: dict[str, Any] = {
        "alias": feature.name,
        "title": feature.name.replace("_", " ").capitalize(),
        "description": _description(feature),
        "json_schema_extra": extra,
    }
    if feature.example is not None:
        common["examples"] = [feature.example]
    annotation: Any
    if feature.kind is FeatureKind.NUMERIC:
        annotation = float
        common.update(strict=True, allow_inf_nan=False, ge=feature.minimum, le=feature.maximum)
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
    example = {k: v for k, v in spec.example_record().items() if v is not None}
    config = ConfigDict(
        extra="forbid",
        title=f"{_camel(spec.name)}Record",
        json_schema_extra={"examples": [example]} if example else None,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    # Values typed Any: mypy matches a ** mapping against create_model's named parameters (__config__, ...) too.
    fields: dict[str, Any] = {f"f{i}": _field(feature) for i, feature in enumerate(spec.features)}
    return create_model(
        f"{_camel(spec.name)}Record",
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
