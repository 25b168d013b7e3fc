"""The OpenAPI document, generated from the served bundles and regenerated whenever one changes or a model appears.

The legacy routes declare their request bodies as references to ``#/components/schemas/Record`` and
``BatchRequest``; this module fills those in from the default model's generated record model (field names,
types, units, descriptions, ranges, categories, examples) and lists its class labels in the responses.
Every served model gets its own tag, components and operations (:mod:`api.model_docs`): the
``/models/{name}/predict``, ``/predict/batch`` and ``/reload`` templates are replaced by one path per model.
The document is cached per set of bundles: a swap, or a new model, makes the next ``/openapi.json`` (and
``/docs``) describe what is served now, never a stale state.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.bundle import ModelBundle
from api.model_docs import NO_MODEL, components_for, operations_for, tag_for
from api.model_fleet import ModelFleet
from api.model_store import ModelStore
from api.routers.models import PER_MODEL_PATHS


def _model_description(bundle: ModelBundle | None, store: ModelStore, fleet: ModelFleet) -> str:
    others = ", ".join(f"`{name}`" for name in fleet.names())
    served = f"\n\nModels served: {others} (`GET /models`; each has its own section below)."
    if bundle is None:
        return (
            f"**The default model is not loaded.** The service serves `models:/{store.settings.model_name}@"
            f"{store.settings.model_alias}` as soon as it exists ({store.settings.setup_hint}).{served}"
        )
    spec, ref = bundle.spec, bundle.ref
    if bundle.is_classifier:
        answer = f"Classes: {', '.join(f'`{label}`' for label in bundle.labels)}"
        if spec.target.positive_class is not None:
            answer += f" (positive: `{spec.target.positive_class}`)"
    else:
        answer = f"A {bundle.task.value} model; unit: {spec.target.unit or 'none'}"
    return (
        f"Default model (`/predict`): **{ref.name}** version **{ref.version}** (alias `{ref.alias}`, run "
        f"`{ref.run_id}`).\n\n**{spec.title}**: {spec.description}\n\n"
        f"Target `{spec.target.name}`: {spec.target.description} {answer}.{served}"
    )


def _legacy_components(components: dict[str, Any], bundle: ModelBundle | None, max_batch: int) -> None:
    """``Record`` and ``BatchRequest`` of the legacy routes: the default model's."""
    batch: dict[str, Any] = {
        "title": "BatchRequest",
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Record"},
                "minItems": 1,
                "maxItems": max_batch,
                "description": f"1 to {max_batch} records (MLOPS_API_MAX_BATCH).",
            }
        },
    }
    if bundle is None:
        components["Record"] = dict(NO_MODEL)
    else:
        record = bundle.record_model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(record.pop("$defs", {}))
        components["Record"] = record
        examples = record.get("examples") or []
        if examples:
            batch["examples"] = [{"records": examples[:1]}]
        prediction = components.get("Prediction", {}).get("properties", {})
        if "label" in prediction and bundle.is_classifier:
            prediction["label"]["enum"] = list(bundle.labels)
    components["BatchRequest"] = batch


def build_openapi(app: FastAPI, fleet: ModelFleet) -> dict[str, Any]:
    """The complete OpenAPI document for what the fleet serves now."""
    store = fleet.default
    bundle = store.bundle
    stores = fleet.stores()
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=f"{app.description}\n\n{_model_description(bundle, store, fleet)}",
        routes=app.routes,
        tags=[*(app.openapi_tags or []), *(tag_for(name, s) for name, s in stores)],
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    max_batch = fleet.settings.max_batch
    _legacy_components(components, bundle, max_batch)
    paths = schema.setdefault("paths", {})
    templates = {path: paths.pop(path) for path in PER_MODEL_PATHS if path in paths}
    for name, model_store in stores:
        components.update(components_for(name, model_store.bundle, max_batch))
        paths.update(operations_for(name, templates))
    _name_examples(paths.get("/models/{name}", {}), [name for name, _ in stores])
    return schema


def _name_examples(item: dict[str, Any], names: list[str]) -> None:
    """Give the ``name`` parameter of ``GET /models/{name}`` the served names as examples (clients, fuzzers)."""
    for operation in item.values():
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "name" and parameter.get("in") == "path" and names:
                parameter["schema"] = {**parameter.get("schema", {}), "examples": names}


def install_openapi(app: FastAPI, fleet: ModelFleet) -> None:
    """Make ``app.openapi()`` return the document of what is served (cached until a bundle or the set changes)."""
    cache: dict[str, Any] = {"key": None, "schema": None}

    def openapi() -> dict[str, Any]:
        key = (fleet.generation, tuple(s.bundle for _, s in fleet.stores()))  # bundles compare by identity
        if cache["schema"] is None or cache["key"] != key:
            cache["schema"] = build_openapi(app, fleet)
            cache["key"] = key
        schema: dict[str, Any] = cache["schema"]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
