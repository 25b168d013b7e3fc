"""The registry gate: the search's best model becomes ``challenger``, and ``champion`` only if it earns it.

Rules (all scores on the same, current test split, with the configured metric):

* no champion yet: the challenger becomes champion if it reaches ``min_champion_score``;
* a champion exists: the challenger takes over only if it beats the champion by at least
  ``promotion_margin`` (and by more than nothing);
* a champion that cannot be scored on the current split (its input schema no longer matches the data)
  is replaced by a challenger that reaches ``min_champion_score``.

The decision, the reason and both scores are recorded as tags on the new version. ``champion`` is only
ever moved, never deleted, so once a champion exists the model is never left without one; ``challenger``
is removed when its version becomes champion (it names a candidate that lost, or none). Re-running the
gate for a model that is already registered reuses its version (idempotent).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml import evaluate
from ml.contracts import GateDecision, GateTags, ModelVersionTags, SearchResult
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import to_matrix, to_target
from ml.settings import MLSettings
from ml.spec import DatasetSpec

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = GateTags.tag_key("decision")  # written last: its presence marks the gate as complete


def _client(settings: MLSettings) -> MlflowClient:
    if settings.tracking_uri:
        mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient()


def current_champion(client: MlflowClient, name: str) -> Any | None:
    """The model version that holds the ``champion`` alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _existing_version(client: MlflowClient, name: str, model_id: str) -> Any | None:
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for version in versions:
        if ModelVersionTags.from_tags(version.tags).model_id == model_id:
            return version
    return None


def register(client: MlflowClient, settings: MLSettings, result: SearchResult, spec: DatasetSpec) -> Any:
    """Register the search result's model as a new version (or return the version it already has)."""
    name = str(settings.model_name)
    try:
        client.create_registered_model(name, description=f"{spec.title}: {spec.description}")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    existing = _existing_version(client, name, result.model_id)
    if existing is not None:
        return existing
    tags = ModelVersionTags(
        model_id=result.model_id,
        data_version=result.data_version,
        family=result.family,
        schema_hash=spec.fingerprint(),
    ).to_tags()
    version = mlflow.register_model(result.model_uri, name, tags=tags)
    return client.get_model_version(name, version.version)


def _score(model_uri: str, x: Any, y: Any, metric: str) -> float:
    model = mlflow.sklearn.load_model(model_uri)
    return evaluate.score(model, x, y, metric)


def register_and_gate(
    result: SearchResult, spec: DatasetSpec, settings: MLSettings, lake: Lake, split_manifest: str | None = None
) -> GateDecision:
    """Register ``result`` (from :func:`ml.search.finish_search`), tag it ``challenger`` and run the gate."""
    client = _client(settings)
    name = str(settings.model_name)
    metric = settings.metric
    version = register(client, settings, result, spec)
    if DECISION_TAG in version.tags:  # already gated (a retried task): report the recorded decision
        return _recorded(version, name, metric)

    _, test, manifest = load_split(spec, lake, split_manifest)
    x_test, y_test = to_matrix(test, spec), to_target(test, spec)
    challenger_score = _score(f"models:/{name}/{version.version}", x_test, y_test, metric)
    champion = current_champion(client, name)
    champion_score: float | None = None
    if champion is None:
        promoted = challenger_score >= settings.min_champion_score
        reason = (
            f"first model: {metric} {challenger_score:.4f} "
            f"{'reaches' if promoted else 'is below'} the minimum {settings.min_champion_score:.4f}"
        )
    else:
        try:
            champion_score = _score(f"models:/{name}/{champion.version}", x_test, y_test, metric)
        except Exception as exc:  # e.g. the champion expects another input schema
            log.warning("champion v%s cannot be scored on the current split: %s", champion.version, exc)
        if champion_score is None:
            promoted = challenger_score >= settings.min_champion_score
            reason = (
                f"champion v{champion.version} cannot be scored on data {manifest.data_version}; "
                f"challenger {metric} {challenger_score:.4f} vs minimum {settings.min_champion_score:.4f}"
            )
        else:
            gain = challenger_score - champion_score
            promoted = gain > 0 and gain >= settings.promotion_margin
            reason = (
                f"challenger {metric} {challenger_score:.4f} vs champion v{champion.version} "
                f"{champion_score:.4f}: gain {gain:+.4f} {'>=' if promoted else '<'} margin "
                f"{settings.promotion_margin:.4f}"
            )

    client.set_registered_model_alias(name, CHALLENGER, version.version)
    decision = GateDecision(
        model_name=name,
        version=str(version.version),
        promoted=promoted,
        reason=reason,
        metric=metric,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=str(champion.version) if champion is not None else None,
        data_version=manifest.data_version,
    )
    tags = GateTags(
        metric=metric,
        reason=reason,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=decision.champion_version,
        margin=settings.promotion_margin,
        min_score=settings.min_champion_score,
        data_version=decision.data_version,
        decision="promoted" if promoted else "rejected",
    ).to_tags()
    decision_tag = tags.pop(DECISION_TAG)
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    if promoted:
        # Moving the alias is one atomic update: there is never a moment without a champion.
        client.set_registered_model_alias(name, CHAMPION, version.version)
        client.delete_registered_model_alias(name, CHALLENGER)
    # The decision tag goes last: its presence marks the gate as complete for this version.
    client.set_model_version_tag(name, version.version, DECISION_TAG, decision_tag)
    log.info("model %s v%s %s: %s", name, version.version, "promoted" if promoted else "kept as challenger", reason)
    return decision


def _recorded(version: Any, name: str, metric: str) -> GateDecision:
    tags = GateTags.from_tags(version.tags)
    return GateDecision(
        model_name=name,
        version=str(version.version),
        promoted=tags.promoted,
        reason=tags.reason,
        metric=metric if tags.metric is None else tags.metric,
        challenger_score=tags.challenger_score,
        champion_score=tags.champion_score,
        champion_version=tags.champion_version,
        data_version=tags.data_version,
    )
