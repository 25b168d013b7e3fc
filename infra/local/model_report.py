"""What the registry says about each dataset's model, for ``make up``'s summary: champion, gate, metrics.

Read over MLflow's REST API as the stack's operator (no MLflow client import: ``make up`` stays quick). The
line of a model names its task, its champion version (or "no champion" with the registry gate's reason, or
why training did not run to the gate) and the cross-validation and test scores in the spec's metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from infra import catalog
from infra.local.stack import Stack
from ml.contracts import GateTags
from ml.spec import DatasetSpec

CHAMPION = "champion"


@dataclass(frozen=True)
class ModelReport:
    """One dataset's model after ``make up``: its champion (if any) and the scores of the version reported."""

    dataset: str
    task: str
    registered_model: str
    metric: str
    champion: str | None = None
    version: str | None = None  # the version the scores are of: the champion, else the newest
    gate_reason: str | None = None  # the newest version's gate reason when it is not the champion
    cv_score: float | None = None
    test_score: float | None = None
    problem: str | None = None  # why there is no gated version (training failed, no version registered)

    def line(self) -> str:
        """``<dataset> <task> <model> v<N> champion | no champion: <why>; CV <metric> x; test <metric> y``."""
        if self.champion is not None:
            state = f"{self.registered_model} v{self.champion} champion"
        else:
            why = self.problem or (f"gate: {self.gate_reason}" if self.gate_reason else "no version gated yet")
            state = f"{self.registered_model}: no champion: {why}"
        parts = [f"{self.dataset:<16} {self.task:<10} {state}"]
        if self.cv_score is not None:
            of = "" if self.version == self.champion else f" (v{self.version})"
            parts.append(f"CV {self.metric} {self.cv_score:.3f}{of}")
        if self.test_score is not None:
            parts.append(f"test {self.metric} {self.test_score:.3f}")
        if self.champion is not None and self.problem:
            parts.append(f"this run: {self.problem}")
        return "; ".join(parts)


def _mlflow(stack: Stack, path: str, **params: Any) -> dict[str, Any] | None:
    """GET an MLflow REST endpoint; None when the resource does not exist."""
    response = httpx.get(
        stack.url(catalog.MLFLOW, f"/api/2.0/mlflow/{path}"), params=params, auth=stack.mlflow_login(), timeout=10
    )
    if response.status_code in (400, 404):  # RESOURCE_DOES_NOT_EXIST / INVALID_PARAMETER_VALUE
        return None
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def champion_version(stack: Stack, registered_model: str) -> str | None:
    """The registry's current champion version of ``registered_model``, or None when there is none yet."""
    answer = _mlflow(stack, "registered-models/alias", name=registered_model, alias=CHAMPION)
    return None if answer is None else str(answer["model_version"]["version"])


def _newest_version(stack: Stack, registered_model: str) -> dict[str, Any] | None:
    answer = _mlflow(stack, "model-versions/search", filter=f"name='{registered_model}'", max_results=1000)
    versions = (answer or {}).get("model_versions") or []
    return max(versions, key=lambda v: int(v["version"])) if versions else None


def _version(stack: Stack, registered_model: str, version: str) -> dict[str, Any] | None:
    answer = _mlflow(stack, "model-versions/get", name=registered_model, version=version)
    return None if answer is None else answer["model_version"]


def _run_metrics(stack: Stack, run_id: str | None) -> dict[str, float]:
    answer = _mlflow(stack, "runs/get", run_id=run_id) if run_id else None
    metrics = ((answer or {}).get("run") or {}).get("data", {}).get("metrics") or []
    return {m["key"]: float(m["value"]) for m in metrics}


def model_report(stack: Stack, spec: DatasetSpec, problem: str | None = None) -> ModelReport:
    """The registry's view of ``spec``'s model; ``problem``: why this run of ``make up`` did not reach the gate."""
    name = spec.registered_model
    champion = champion_version(stack, name)
    newest = _newest_version(stack, name)
    reported = _version(stack, name, champion) if champion else newest
    gate_reason = None
    if newest is not None and str(newest["version"]) != champion:
        tags = {t["key"]: t["value"] for t in newest.get("tags") or []}
        if GateTags.tag_key("decision") in tags:
            gate_reason = GateTags.from_tags(tags).reason or "rejected"
    if problem is None and reported is None:
        problem = "no version registered (run make up, or trigger its ETL DAG)"
    metrics = _run_metrics(stack, (reported or {}).get("run_id"))
    return ModelReport(
        dataset=spec.name,
        task=spec.task.value,
        registered_model=name,
        metric=spec.metric.name,
        champion=champion,
        version=None if reported is None else str(reported["version"]),
        gate_reason=gate_reason,
        cv_score=metrics.get("best_cv_score"),
        test_score=metrics.get(f"test_{spec.metric.name}"),
        problem=problem,
    )
