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
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml import evaluate
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import to_matrix, to_target
from ml.settings import MLSettings
from ml.spec import DatasetSpec

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = "gate.decision"


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gate for one model version."""

    model_name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None
    champion_version: str | None
    data_version: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict form (for XComs and logs)."""
        return asdict(self)


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
        if version.tags.get("mlops.model_id") == model_id:
            return version
    return None


def register(client: MlflowClient, settings: MLSettings, result: dict[str, Any], spec: DatasetSpec) -> Any:
    """Register the search result's model as a new version (or return the version it already has)."""
    name = str(settings.model_name)
    try:
        client.create_registered_model(name, description=f"{spec.title}: {spec.description}")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    existing = _existing_version(client, name, result["model_id"])
    if existing is not None:
        return existing
    tags = {
        "mlops.model_id": result["model_id"],
        "mlops.data_version": result["data_version"],
        "mlops.family": result["family"],
        "mlops.schema_hash": spec.fingerprint(),
    }
    version = mlflow.register_model(result["model_uri"], name, tags=tags)
    return client.get_model_version(name, version.version)


def _score(model_uri: str, x: Any, y: Any, metric: str) -> float:
    model = mlflow.sklearn.load_model(model_uri)
    return evaluate.score(model, x, y, metric)


def register_and_gate(
    result: dict[str, Any], spec: DatasetSpec, settings: MLSettings, lake: Lake, split_manifest: str | None = None
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
                f"champion v{champion.version} cannot be scored on data {manifest['data_version']}; "
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
        data_version=manifest["data_version"],
    )
    tags = {
        "gate.metric": metric,
        "gate.reason": reason,
        "gate.challenger_score": f"{challenger_score:.6f}",
        "gate.champion_score": "none" if champion_score is None else f"{champion_score:.6f}",
        "gate.champion_version": decision.champion_version or "none",
        "gate.margin": str(settings.promotion_margin),
        "gate.min_score": str(settings.min_champion_score),
        "gate.data_version": decision.data_version,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    if promoted:
        # Moving the alias is one atomic update: there is never a moment without a champion.
        client.set_registered_model_alias(name, CHAMPION, version.version)
        client.delete_registered_model_alias(name, CHALLENGER)
    # The decision tag goes last: its presence marks the gate as complete for this version.
    client.set_model_version_tag(name, version.version, DECISION_TAG, "promoted" if promoted else "rejected")
    log.info("model %s v%s %s: %s", name, version.version, "promoted" if promoted else "kept as challenger", reason)
    return decision


def _recorded(version: Any, name: str, metric: str) -> GateDecision:
    tags = version.tags

    def number(key: str) -> float | None:
        value = tags.get(key, "none")
        return None if value == "none" else float(value)

    return GateDecision(
        model_name=name,
        version=str(version.version),
        promoted=tags[DECISION_TAG] == "promoted",
        reason=tags.get("gate.reason", ""),
        metric=tags.get("gate.metric", metric),
        challenger_score=float(tags.get("gate.challenger_score", "nan")),
        champion_score=number("gate.champion_score"),
        champion_version=None if tags.get("gate.champion_version", "none") == "none" else tags["gate.champion_version"],
        data_version=tags.get("gate.data_version", ""),
    )
