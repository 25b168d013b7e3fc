"""Turn a model's files (``MLmodel`` and ``model.skops``) into a fitted estimator, safely.

MLflow 3 saves scikit-learn models with skops (no pickle, no arbitrary code on load). skops loads only
types it trusts: its defaults (builtins, NumPy, SciPy, scikit-learn estimators) plus the list MLflow
records in the ``sklearn`` flavor of ``MLmodel`` (``skops_trusted_types``, e.g. ``numpy.dtype`` or the
tree predictors of a histogram gradient boosting model). This module trusts exactly that and refuses
any type outside ``numpy.``, ``scipy.`` and ``sklearn.``, whatever the ``MLmodel`` says.

Start-up time: importing ``skops.io`` computes its default list by importing every scikit-learn module
(``sklearn.utils.all_estimators``), which costs about a second, more than half of a Lambda cold start.
:func:`_skops_io` imports it without that walk and :func:`trusted_types` adds back, per file, exactly the
default-trusted estimator classes the file contains (public, concrete ``BaseEstimator`` subclasses from
scikit-learn, the rule ``all_estimators`` applies), so what is trusted does not change.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import yaml

SAFE_TYPE_PREFIXES = ("numpy.", "scipy.", "sklearn.")
MLMODEL = "MLmodel"


class ModelFormatError(ValueError):
    """The files are not a model this service can serve (format, flavor, types or metadata)."""


@dataclass(frozen=True)
class SklearnFlavor:
    """What ``MLmodel`` says about the scikit-learn model file."""

    filename: str
    serialization_format: str
    trusted_types: tuple[str, ...]
    sklearn_version: str | None


def parse_mlmodel(data: bytes) -> dict[str, Any]:
    """Parse an ``MLmodel`` file (YAML) into a mapping."""
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ModelFormatError(f"MLmodel is not valid YAML: {exc}") from None
    if not isinstance(parsed, dict):
        raise ModelFormatError("MLmodel is not a YAML mapping")
    return parsed


def sklearn_flavor(mlmodel: dict[str, Any]) -> SklearnFlavor:
    """The ``sklearn`` flavor of a parsed ``MLmodel``; only skops-serialised models are accepted."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not isinstance(flavor, dict):
        raise ModelFormatError("MLmodel has no 'sklearn' flavor: this service serves scikit-learn models only")
    fmt = str(flavor.get("serialization_format", "cloudpickle"))
    if fmt != "skops":
        raise ModelFormatError(
            f"the model is serialised with {fmt!r}; only 'skops' is served (pickle formats run code on load). "
            "Log it with mlflow.sklearn.log_model(..., serialization_format='skops')"
        )
    trusted = tuple(str(t) for t in flavor.get("skops_trusted_types") or ())
    unsafe = [t for t in trusted if not t.startswith(SAFE_TYPE_PREFIXES)]
    if unsafe:
        raise ModelFormatError(f"MLmodel asks to trust types outside numpy/scipy/sklearn: {unsafe}")
    return SklearnFlavor(
        filename=str(flavor.get("pickled_model", "model.skops")),
        serialization_format=fmt,
        trusted_types=trusted,
        sklearn_version=flavor.get("sklearn_version"),
    )


def _skops_io() -> ModuleType:
    """``skops.io``, imported without scanning all of scikit-learn for its default trusted list."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    original = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = original
    io_module: ModuleType = skops.io  # skops ships no type information
    return io_module


def warm_imports() -> None:
    """Import what loading a model imports (scikit-learn, skops), e.g. in a server's master before it forks."""
    _skops_io()
    import sklearn.base  # noqa: F401


def _is_default_trusted_estimator(type_name: str) -> bool:
    """Whether skops' default list holds ``type_name``: a public, concrete scikit-learn estimator class."""
    if not type_name.startswith("sklearn."):
        return False
    module_name, _, class_name = type_name.rpartition(".")
    if class_name.startswith("_"):
        return False
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return False
    from sklearn.base import BaseEstimator

    return inspect.isclass(cls) and issubclass(cls, BaseEstimator) and not inspect.isabstract(cls)


def trusted_types(model_bytes: bytes, flavor: SklearnFlavor) -> list[str]:
    """The types to pass to ``skops.io.loads``; raises :class:`ModelFormatError` for anything else in the file."""
    skops_io = _skops_io()
    try:
        untrusted = skops_io.get_untrusted_types(data=model_bytes)
    except Exception as exc:  # a corrupt or foreign file: skops raises zip, JSON and key errors
        raise ModelFormatError(f"the model file is not a readable skops file: {exc}") from None
    allowed = set(flavor.trusted_types)
    trusted, refused = [], []
    for name in untrusted:
        safe = name.startswith(SAFE_TYPE_PREFIXES)
        if safe and (name in allowed or _is_default_trusted_estimator(name)):
            trusted.append(name)
        else:
            refused.append(name)
    if refused:
        raise ModelFormatError(
            f"the model file contains types that are neither trusted by default nor listed in MLmodel's "
            f"skops_trusted_types (or are outside numpy/scipy/sklearn): {refused}"
        )
    return trusted


def load_estimator(model_bytes: bytes, flavor: SklearnFlavor) -> Any:
    """Load the fitted estimator from skops bytes, trusting only what :func:`trusted_types` allows."""
    trusted = trusted_types(model_bytes, flavor)
    try:
        return _skops_io().loads(model_bytes, trusted=trusted)
    except Exception as exc:
        raise ModelFormatError(f"skops could not load the model: {type(exc).__name__}: {exc}") from None
