"""The registry gate: the search's best model becomes ``challenger``, and ``champion`` only if it earns it.

Rules (all scores on the same, current test split, with the spec's metric in its direction, see
:attr:`ml.spec.DatasetSpec.metric`; thresholds from the spec's ``training`` section):

* no champion yet: the challenger becomes champion if its score meets ``min_champion_score`` (at least
  that high, or for a loss at most that low). Without a threshold (a regression's default, or a loss
  metric's) it must beat the trivial baseline instead: the training mean for a regression, the training
  class frequencies for a classifier (:func:`baseline_score`), so a model that learned nothing never serves;
* a champion exists: the challenger takes over only if it beats the champion by at least
  ``promotion_margin`` in the metric's direction (:meth:`ml.tasks.MetricInfo.better`);
* a champion that cannot be scored on the current split (its input schema no longer matches the data)
  is replaced by a challenger that meets ``min_champion_score``.

The decision, the reason (a sentence naming the spec setting that decided it), the metric, its direction,
the threshold, the margin and both scores are recorded as tags on the version (:class:`ml.contracts.GateTags`).
``champion`` is only ever moved, never deleted, so once a champion exists the model is never left without
one; ``challenger`` is removed when its version becomes champion. Re-running the gate for a model that is
already registered reuses its version (idempotent); :func:`regate` decides again for an existing version
with the spec's current settings (``python -m ml gate``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml import evaluate
from ml.contracts import GateDecision, GateTags, ModelVersionTags, RegisteredModelTags, SearchResult
from ml.etl.split import load_split
from ml.lake import Lake
from ml.model import to_matrix, to_target
from ml.settings import MLSettings
from ml.spec import DatasetSpec
from ml.tracking import tracking_client

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = GateTags.tag_key("decision")  # written last: its presence marks the gate as complete


class GateError(RuntimeError):
    """The gate cannot run: no such model or version, or the registry is unreachable; the message says which."""


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


def register(client: MlflowClient, result: SearchResult, spec: DatasetSpec) -> Any:
    """Register the search result's model as a new version of ``spec.registered_model`` (or return its version).

    The registered model is tagged with its dataset and task (:class:`ml.contracts.RegisteredModelTags`).
    """
    name = spec.registered_model
    try:
        client.create_registered_model(name, description=f"{spec.title}: {spec.description}")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    for key, value in RegisteredModelTags(dataset=spec.name, task=spec.task.value).to_tags().items():
        client.set_registered_model_tag(name, key, value)
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


@dataclass(frozen=True)
class Verdict:
    """What the gate decided and why (a sentence naming the spec setting that decided it)."""

    promoted: bool
    reason: str


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def decide_first(spec: DatasetSpec, score: float, prefix: str = "", baseline: float | None = None) -> Verdict:
    """The first-model rule: champion if ``score`` meets ``spec.min_champion_score``.

    Without a threshold: champion if ``score`` beats ``baseline`` (the trivial model's score on the same
    split, :func:`baseline_score`), or always when no baseline is given.
    """
    metric, threshold = spec.metric, spec.min_champion_score
    setting = f"training.min_champion_score in ml/datasets/{spec.name}.yaml"
    if threshold is None:
        if baseline is None:
            return Verdict(
                True,
                f"{prefix}first model: test {metric.name} {_fmt(score)}; no first-model threshold is set ({setting})",
            )
        trivial = BASELINE_NAMES[spec.task.is_classification]
        if metric.better(score, baseline) and score != baseline:
            return Verdict(
                True,
                f"{prefix}first model: test {metric.name} {_fmt(score)} beats the baseline's {_fmt(baseline)} "
                f"({trivial}); no first-model threshold is set ({setting})",
            )
        way = "higher" if metric.greater_is_better else "lower"
        return Verdict(
            False,
            f"{prefix}test {metric.name} {_fmt(score)} does not beat the baseline's {_fmt(baseline)} ({trivial}; "
            f"{way} is better): the model learned nothing the baseline does not know; with no first-model "
            f"threshold set ({setting}), a first model must beat it",
        )
    if metric.meets(score, threshold):
        word = "reaches" if metric.greater_is_better else "is within"
        return Verdict(
            True,
            f"{prefix}first model: test {metric.name} {_fmt(score)} {word} the first-model threshold "
            f"{threshold:g} ({setting})",
        )
    word = "is below" if metric.greater_is_better else "is above"
    worse = "" if metric.greater_is_better else ", and lower is better"
    return Verdict(
        False,
        f"{prefix}test {metric.name} {_fmt(score)} {word} the first-model threshold {threshold:g} ({setting}{worse})",
    )


def decide_challenger(spec: DatasetSpec, score: float, champion_score: float, champion_version: str) -> Verdict:
    """The challenger rule: champion if ``score`` beats the champion's by ``spec.promotion_margin``."""
    metric, margin = spec.metric, spec.promotion_margin
    setting = f"training.promotion_margin in ml/datasets/{spec.name}.yaml"
    gain = score - champion_score if metric.greater_is_better else champion_score - score
    way = "higher" if metric.greater_is_better else "lower"
    promoted = gain > 0 and metric.better(score, champion_score, margin)
    verb = "beats" if promoted else "does not beat"
    return Verdict(
        promoted,
        f"test {metric.name} {_fmt(score)} {verb} champion v{champion_version}'s {_fmt(champion_score)} by the "
        f"promotion margin {margin:g} ({setting}; {way} is better, improvement {gain:+.4g})",
    )


#: What the trivial model of each kind of task predicts, as the gate's reasons name it (key: is classification).
BASELINE_NAMES = {False: "always predicting the training mean", True: "predicting the training class frequencies"}


def baseline_score(spec: DatasetSpec, train: Any, x_test: Any, y_test: Any) -> float:
    """The spec's metric for the trivial model on the test split.

    The trivial model predicts the training mean (regression), or the training class frequencies as
    probabilities (classification; its label is then always the majority class).
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    dummy = DummyClassifier(strategy="prior") if spec.task.is_classification else DummyRegressor(strategy="mean")
    dummy.fit(to_matrix(train, spec), to_target(train, spec))
    return evaluate.score(dummy, x_test, y_test, spec.metric)


def _score(model_uri: str, x: Any, y: Any, spec: DatasetSpec) -> float:
    model = mlflow.sklearn.load_model(model_uri)
    return evaluate.score(model, x, y, spec.metric)


def register_and_gate(
    result: SearchResult, spec: DatasetSpec, settings: MLSettings, lake: Lake, split_manifest: str | None = None
) -> GateDecision:
    """Register ``result`` (from :func:`ml.search_finish.finish_search`), tag it ``challenger`` and run the gate."""
    client = tracking_client(settings)
    version = register(client, result, spec)
    if DECISION_TAG in version.tags:  # already gated (a retried task): report the recorded decision
        return _recorded(version, spec.registered_model, spec.metric.name)
    return gate_version(client, spec, lake, version, split_manifest)


def gate_version(
    client: MlflowClient, spec: DatasetSpec, lake: Lake, version: Any, split_manifest: str | None = None
) -> GateDecision:
    """Score a registered version (and the champion) on the test split, decide, move the aliases, write the tags."""
    name = spec.registered_model
    train, test, manifest = load_split(spec, lake, split_manifest)
    x_test, y_test = to_matrix(test, spec), to_target(test, spec)
    challenger_score = _score(f"models:/{name}/{version.version}", x_test, y_test, spec)

    def first(prefix: str = "") -> Verdict:  # the first-model rule; the baseline only when no threshold is set
        needs_baseline = spec.min_champion_score is None
        baseline = baseline_score(spec, train, x_test, y_test) if needs_baseline else None
        return decide_first(spec, challenger_score, prefix, baseline)

    champion = current_champion(client, name)
    champion_score: float | None = None
    if champion is None:
        verdict = first()
    elif str(champion.version) == str(version.version):  # re-gating the champion itself
        today = first().reason
        verdict = Verdict(
            True,
            f"v{version.version} is the champion already and stays champion (a champion is only replaced by a "
            f"better version, never removed); against the spec as it is now: {today}",
        )
        champion = None
    else:
        try:
            champion_score = _score(f"models:/{name}/{champion.version}", x_test, y_test, spec)
        except Exception as exc:  # e.g. the champion expects another input schema
            log.warning("champion v%s cannot be scored on the current split: %s", champion.version, exc)
        if champion_score is None:
            prefix = f"champion v{champion.version} cannot be scored on data {manifest.data_version}; "
            verdict = first(prefix)
        else:
            verdict = decide_challenger(spec, challenger_score, champion_score, str(champion.version))
    decision = GateDecision(
        model_name=name,
        version=str(version.version),
        promoted=verdict.promoted,
        reason=verdict.reason,
        metric=spec.metric.name,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=str(champion.version) if champion is not None else None,
        data_version=manifest.data_version,
        direction=spec.metric.direction,
        min_score=spec.min_champion_score,
        margin=spec.promotion_margin,
    )
    _apply(client, decision)
    return decision


def _apply(client: MlflowClient, decision: GateDecision) -> None:
    """Move the aliases and write the gate tags (the decision tag last)."""
    name, version = decision.model_name, decision.version
    client.set_registered_model_alias(name, CHALLENGER, version)
    tags = GateTags(
        metric=decision.metric,
        reason=decision.reason,
        challenger_score=decision.challenger_score,
        champion_score=decision.champion_score,
        champion_version=decision.champion_version,
        margin=decision.margin,
        min_score=decision.min_score,
        data_version=decision.data_version,
        direction=decision.direction,
        decision="promoted" if decision.promoted else "rejected",
    ).to_tags()
    decision_tag = tags.pop(DECISION_TAG)
    if decision.min_score is None:  # a re-gate without a threshold must not leave an older one behind
        _delete_tag(client, name, version, GateTags.tag_key("min_score"))
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if decision.promoted:
        # Moving the alias is one atomic update: there is never a moment without a champion.
        client.set_registered_model_alias(name, CHAMPION, version)
        client.delete_registered_model_alias(name, CHALLENGER)
    # The decision tag goes last: its presence marks the gate as complete for this version.
    client.set_model_version_tag(name, version, DECISION_TAG, decision_tag)
    log.info("model %s v%s %s: %s", name, version, "promoted" if decision.promoted else "kept as challenger",
             decision.reason)  # fmt: skip


def _delete_tag(client: MlflowClient, name: str, version: str, key: str) -> None:
    if key in client.get_model_version(name, version).tags:
        client.delete_model_version_tag(name, version, key)


def regate(spec: DatasetSpec, settings: MLSettings, lake: Lake, version: str | None = None) -> GateDecision:
    """Decide again for an existing version (default: the newest) with the spec's current threshold and margin.

    Scores on the current split, moves the aliases and overwrites the version's gate tags. Raises
    :class:`GateError` when the registered model or the version does not exist or MLflow cannot be reached.
    """
    client = tracking_client(settings)
    name = spec.registered_model
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise GateError(
            f"cannot list the versions of registered model {name!r} at {mlflow.get_tracking_uri()}: {exc}"
        ) from None
    if not versions:
        raise GateError(f"registered model {name!r} has no versions: train {spec.name} first (the training DAG)")
    by_number = {str(v.version): v for v in versions}
    chosen = version if version is not None else max(by_number, key=int)
    if chosen not in by_number:
        raise GateError(
            f"registered model {name!r} has no version {chosen}; it has {', '.join(sorted(by_number, key=int))}"
        )
    return gate_version(client, spec, lake, by_number[chosen])


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
        direction=tags.direction,
        min_score=tags.min_score,
        margin=tags.margin,
    )
