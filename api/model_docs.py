"""One model's part of the OpenAPI document: its tag, its schema components and its operations.

For the model of dataset ``wine`` (prefix ``Wine``): the components ``WineRecord`` (generated from the spec:
names, titles, types, units, ranges, categories, examples), ``WineBatchRequest``, ``WinePrediction`` and
``WineBatchPrediction`` (a classifier's labels as an enum and its probabilities by label; a regressor's value
and unit), each with an example; the example answer is the model's own prediction of the spec's example
record. The operations ``/models/wine/predict``, ``/predict/batch`` and ``/reload`` are copies of the
``/models/{name}/...`` templates under the tag ``wine``, whose description names the spec, task and classes
or unit.
"""

from __future__ import annotations

import copy
from typing import Any

from api.bundle import ModelBundle
from api.model_store import ModelStore
from api.schemas import camel

REF = "#/components/schemas/"
NO_MODEL = {
    "type": "object",
    "description": "No model is loaded yet: the schema appears here once the service serves a model.",
}


def tag_for(name: str, store: ModelStore) -> dict[str, str]:
    """The OpenAPI tag of one model: spec title and description, task, classes or unit, served version."""
    bundle = store.bundle
    if bundle is None:
        why = store.status.last_error or "not loaded yet"
        return {"name": name, "description": f"Registered model `{store.settings.model_name}`: **no champion is "
                                              f"served** ({why}). GET /models/{name} says how to get one."}  # fmt: skip
    spec, target = bundle.spec, bundle.spec.target
    if bundle.is_classifier:
        answer = f"Classes: {', '.join(f'`{label}`' for label in bundle.labels)}"
        if target.positive_class is not None:
            answer += f" (positive: `{target.positive_class}`)"
    else:
        answer = f"Predicts `{target.name}` ({target.description.rstrip('.')}); unit: {target.unit or 'none'}"
    description = (
        f"**{spec.title}** ({bundle.task.value}). {spec.description} {answer}. Serving `{bundle.ref.name}` "
        f"version {bundle.ref.version} (alias `{bundle.ref.alias}`)."
    )
    return {"name": name, "description": description}


def _output_schema(bundle: ModelBundle) -> dict[str, Any]:
    if not bundle.is_classifier:
        unit = bundle.spec.target.unit
        units: list[dict[str, Any]] = [{"type": "string", "enum": [unit]}] if unit else []
        units.append({"type": "null"})
        return {
            "type": "object",
            "required": ["value", "unit"],
            "properties": {
                "value": {"type": "number", "description": f"Predicted {bundle.spec.target.name}."},
                "unit": {"anyOf": units, "description": "Unit of the value (the spec's target unit)."},
            },
        }  # fmt: skip
    labels = list(bundle.labels)
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "type": "object",
        "required": ["class", "label", "probability", "probabilities"],
        "properties": {
            "class": {"type": "integer", "minimum": 0, "maximum": len(labels) - 1,
                      "description": f"Encoded class: the index of the label in {labels}."},
            "label": {"type": "string", "enum": labels, "description": "The predicted class label."},
            "probability": probability | {"description": "Probability of the predicted class."},
            "probabilities": {"type": "object", "properties": {label: probability for label in labels},
                              "required": labels, "description": "Probability of every class, by label."},
        },
    }  # fmt: skip


def _example_answer(bundle: ModelBundle, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's own answer to the example record (None without an example or if it cannot be validated)."""
    if not record:
        return None
    try:
        row = list(bundle.record_model.model_validate(record).__dict__.values())
        return bundle.predictions(bundle.matrix([row]))[0][0]
    except Exception:  # a partial example (nullable fields left out is fine, others are not): no example
        return None


def components_for(name: str, bundle: ModelBundle | None, max_batch: int) -> dict[str, dict[str, Any]]:
    """The schema components of one model, named with its prefix (``WineRecord``...)."""
    prefix = camel(name)
    batch = {
        "title": f"{prefix}BatchRequest",
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": {"type": "array", "items": {"$ref": f"{REF}{prefix}Record"}, "minItems": 1,
                        "maxItems": max_batch, "description": f"1 to {max_batch} records (MLOPS_API_MAX_BATCH)."}
        },
    }  # fmt: skip
    if bundle is None:
        placeholder = dict(NO_MODEL)
        return {f"{prefix}Record": placeholder, f"{prefix}BatchRequest": batch,
                f"{prefix}Prediction": placeholder, f"{prefix}BatchPrediction": placeholder}  # fmt: skip
    found = bundle.record_model.model_json_schema(by_alias=True, ref_template=REF + "{model}")
    components: dict[str, dict[str, Any]] = found.pop("$defs", {})
    record = found | {"title": f"{prefix}Record"}
    examples = record.get("examples") or []
    output = _output_schema(bundle)
    single = copy.deepcopy(output)
    single["required"] = [*single["required"], "model"]
    single["properties"]["model"] = {"$ref": f"{REF}ServedModel"}
    many: dict[str, Any] = {
        "type": "object",
        "required": ["predictions", "model"],
        "properties": {"predictions": {"type": "array", "items": output}, "model": {"$ref": f"{REF}ServedModel"}},
    }
    answer = _example_answer(bundle, examples[0] if examples else None)
    if answer is not None:
        batch["examples"] = [{"records": examples[:1]}]
        single["examples"] = [answer | {"model": bundle.served}]
        many["examples"] = [{"predictions": [answer], "model": bundle.served}]
    return components | {
        f"{prefix}Record": record, f"{prefix}BatchRequest": batch,
        f"{prefix}Prediction": single | {"title": f"{prefix}Prediction"},
        f"{prefix}BatchPrediction": many | {"title": f"{prefix}BatchPrediction"},
    }  # fmt: skip


def operations_for(name: str, templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The model's paths: each ``/models/{name}/...`` template with the name filled in, under the model's tag."""
    prefix = camel(name)
    bodies = {"/models/{name}/predict": ("Record", "Prediction"),
              "/models/{name}/predict/batch": ("BatchRequest", "BatchPrediction")}  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for template, methods in templates.items():
        item: dict[str, Any] = {}
        for method, operation in methods.items():
            op = copy.deepcopy(operation)
            op["tags"] = [name]
            op["operationId"] = f"{op.get('operationId', method)}_{name}"
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "name"]
            if not op["parameters"]:
                del op["parameters"]
            if template in bodies:
                request, response = bodies[template]
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"{REF}{prefix}{request}"}}},
                }
                op["responses"]["200"] = {
                    "description": "Successful Response",
                    "content": {"application/json": {"schema": {"$ref": f"{REF}{prefix}{response}"}}},
                }
            item[method] = op  # fmt: skip
        paths[template.replace("{name}", name)] = item
    return paths
