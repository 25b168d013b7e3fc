"""The OpenAPI document, generated from the served bundle and regenerated whenever the bundle changes.

Routes declare their request bodies as references to ``#/components/schemas/Record`` and
``BatchRequest``; this module fills those in from the bundle's generated record model (field names,
types, units, descriptions, ranges, categories, examples) and lists the model's class labels in the
responses. The document is cached per bundle: a swap makes the next ``/openapi.json`` (and ``/docs``)
describe the new model, never a stale one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.bundle import ModelBundle
from api.model_store import ModelStore

_NO_MODEL = {
    "type": "object",
    "description": "No model is loaded yet: the schema appears here once the service serves a model.",
}


def _model_description(bundle: ModelBundle | None, store: ModelStore) -> str:
    if bundle is None:
        return (
            f"**No model is loaded.** The service serves `models:/{store.settings.model_name}@"
            f"{store.settings.model_alias}` as soon as it exists ({store.settings.setup_hint})."
        )
    spec, ref = bundle.spec, bundle.ref
    return (
        f"Serving **{ref.name}** version **{ref.version}** (alias `{ref.alias}`, run `{ref.run_id}`).\n\n"
        f"**{spec.title}**: {spec.description}\n\n"
        f"Target `{spec.target.name}`: {spec.target.description} Classes: "
        f"{', '.join(f'`{label}`' for label in bundle.labels)} (positive: `{spec.target.positive_class}`)."
    )


def build_openapi(app: FastAPI, store: ModelStore, bundle: ModelBundle | None) -> dict[str, Any]:
    """The complete OpenAPI document for ``bundle`` (or for no model)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=f"{app.description}\n\n{_model_description(bundle, store)}",
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    max_batch = store.settings.max_batch
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
        components["Record"] = dict(_NO_MODEL)
    else:
        record = bundle.record_model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(record.pop("$defs", {}))
        components["Record"] = record
        examples = record.get("examples") or []
        if examples:
            batch["examples"] = [{"records": examples[:1]}]
        prediction = components.get("Prediction", {}).get("properties", {})
        if "label" in prediction:
            prediction["label"]["enum"] = list(bundle.labels)
    components["BatchRequest"] = batch
    return schema


def install_openapi(app: FastAPI, store: ModelStore) -> None:
    """Make ``app.openapi()`` return the document of the bundle being served (cached per bundle)."""
    cache: dict[str, Any] = {"bundle": None, "schema": None}

    def openapi() -> dict[str, Any]:
        bundle = store.bundle
        if cache["schema"] is None or cache["bundle"] is not bundle:
            cache["schema"] = build_openapi(app, store, bundle)
            cache["bundle"] = bundle
        schema: dict[str, Any] = cache["schema"]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
