"""Prometheus metrics of the service, in a registry of their own (one per app, so tests stay independent).

======================================================  =============================================================
``mlops_api_requests_total{path,method,status}``        requests answered (``path``: the route template)
``mlops_api_request_duration_seconds{path}``            latency histogram (from first byte in to last byte out)
``mlops_api_predictions_total{model,label}``            predictions per model and class (regressors: ``value``)
``mlops_api_model_info{model,name,version,alias,...}``  1 for each model's served version
``mlops_api_model_version{model}``                      version number being served (0: none)
``mlops_api_model_loaded{model}``                       1 if the model is loaded
``mlops_api_model_checks_total{model,outcome}``         checks of the alias: loaded / unchanged / failed
``mlops_api_registry_reachable{model}``                 1 if the model's last check reached MLflow (and S3)
``mlops_api_model_from_cache{model}``                   1 if the served model was loaded from the champion cache
======================================================  =============================================================

``model`` is the dataset name (``/models/{name}``). Label values come from fixed sets, so that scanners cannot
blow up the number of series: paths are the service's own route templates, methods the standard ones
(:data:`METHODS`), models the served ones; anything else is counted as ``other``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from api.bundle import ModelBundle
from api.model_store import Outcome, RefreshResult, RegistryStatus

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OTHER_PATH = "other"
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The service's metrics and the cheap per-request recording they need."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlops_api_requests", "Requests answered.", ["path", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mlops_api_request_duration_seconds",
            "Request latency in seconds.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlops_api_predictions",
            "Predictions made, by model and predicted class label.",
            ["model", "label"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlops_api_model_info",
            "The model being served (value 1).",
            ["model", "name", "version", "alias", "model_id", "run_id"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "mlops_api_model_version", "Registry version being served (0: none).", ["model"], registry=self.registry
        )
        self.model_loaded = Gauge(
            "mlops_api_model_loaded", "1 if the model is loaded.", ["model"], registry=self.registry
        )
        self.checks = Counter(
            "mlops_api_model_checks",
            "Checks of the registry alias, by outcome.",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.model_from_cache = Gauge(
            "mlops_api_model_from_cache",
            "1 if the served model was loaded from the champion cache (not from the registry).",
            ["model"],
            registry=self.registry,
        )
        self.registry_reachable = Gauge(
            "mlops_api_registry_reachable",
            "1 if the last check reached the registry.",
            ["model"],
            registry=self.registry,
        )
        self.paths = frozenset(paths)
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._label_children: dict[tuple[str, str], Counter] = {}
        self._info_labels: dict[str, tuple[str, ...]] = {}

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and record its latency."""
        if path not in self.paths:
            path = OTHER_PATH
        if method not in METHODS:
            method = OTHER_METHOD
        key = (path, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(path, method, str(status))
        counter.inc()
        histogram = self._latency_children.get(path)
        if histogram is None:
            histogram = self._latency_children[path] = self.latency.labels(path)
        histogram.observe(seconds)

    def count_predictions(self, model: str, labels: Iterable[str], counts: Iterable[int]) -> None:
        """Add predictions of ``model`` per label (``counts`` aligned with ``labels``)."""
        for label, count in zip(labels, counts, strict=False):
            if count:
                child = self._label_children.get((model, label))
                if child is None:
                    child = self._label_children[(model, label)] = self.predictions.labels(model, label)
                child.inc(count)

    def set_model(self, model: str, bundle: ModelBundle | None, status: RegistryStatus | None = None) -> None:
        """Describe the version ``model`` serves (after a swap or at start-up)."""
        previous = self._info_labels.pop(model, None)
        if previous is not None:
            self.model_info.remove(*previous)
        if bundle is not None:
            ref = bundle.ref
            labels = (model, ref.name, ref.version, ref.alias, ref.model_id or "", ref.run_id or "")
            self.model_info.labels(*labels).set(1)
            self._info_labels[model] = labels
            self.model_version.labels(model).set(float(ref.version) if ref.version.isdigit() else 0)
        else:
            self.model_version.labels(model).set(0)
        self.model_loaded.labels(model).set(1 if bundle is not None else 0)
        self.model_from_cache.labels(model).set(1 if bundle is not None and bundle.source_origin.kind == "cache" else 0)
        if status is not None and status.reachable is not None:
            self.registry_reachable.labels(model).set(1 if status.reachable else 0)

    def forget_model(self, model: str) -> None:
        """Drop every series of a retired ``model`` (its gauges, checks and prediction counts)."""
        previous = self._info_labels.pop(model, None)
        if previous is not None:
            self.model_info.remove(*previous)
        for gauge in (self.model_version, self.model_loaded, self.model_from_cache, self.registry_reachable):
            with contextlib.suppress(KeyError):
                gauge.remove(model)
        for outcome in get_args(Outcome):
            with contextlib.suppress(KeyError):
                self.checks.remove(model, outcome)
        for key in [k for k in self._label_children if k[0] == model]:
            del self._label_children[key]
            with contextlib.suppress(KeyError):
                self.predictions.remove(*key)

    def on_refresh(self, model: str, result: RefreshResult, status: RegistryStatus) -> None:
        """Record one check of ``model``'s alias."""
        self.checks.labels(model, result.outcome).inc()
        self.set_model(model, result.bundle, status)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return bytes(generate_latest(self.registry))
