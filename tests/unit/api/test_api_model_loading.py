"""What the service refuses to load, and how the REST registry client reports an unreachable MLflow."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from api.bundle import build_bundle
from api.model_loader import ModelFormatError, load_estimator, sklearn_flavor
from api.registry_client import MlflowRegistry, ModelRef, RegistryError, RegistryUnavailableError
from tests.unit.api.conftest import make_settings

pytestmark = pytest.mark.unit


def double(x: Any) -> Any:
    """A user function: skops cannot know whether it is safe."""
    return np.asarray(x) * 2


def _ref(directory: Path) -> ModelRef:
    return ModelRef(name="m", version="1", alias="champion", source="models:/m-1", artifact_uri=directory.as_uri())


def _mlmodel(model_dirs: dict[str, Path], **sklearn_flavor_updates: Any) -> dict[str, Any]:
    mlmodel = yaml.safe_load((model_dirs["bc_logreg"] / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"].update(sklearn_flavor_updates)
    return mlmodel


def _build(directory: Path, mlmodel: dict[str, Any], model_bytes: bytes | None = None) -> Any:
    mlmodel_bytes = yaml.safe_dump(mlmodel).encode()
    return build_bundle(_ref(directory), mlmodel_bytes, lambda name: model_bytes or (directory / name).read_bytes())


def test_the_trusted_list_comes_from_mlmodel(model_dirs: dict[str, Path]) -> None:
    flavor = sklearn_flavor(yaml.safe_load((model_dirs["bc_hgb"] / "MLmodel").read_text()))
    assert flavor.filename == "model.skops" and flavor.serialization_format == "skops"
    assert any("TreePredictor" in t for t in flavor.trusted_types)
    assert load_estimator((model_dirs["bc_hgb"] / "model.skops").read_bytes(), flavor).n_features_in_ == 30
    without = flavor.__class__(flavor.filename, "skops", (), None)
    with pytest.raises(ModelFormatError, match="TreePredictor"):
        load_estimator((model_dirs["bc_hgb"] / "model.skops").read_bytes(), without)


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
def test_pickle_formats_are_refused(model_dirs: dict[str, Path], fmt: str) -> None:
    with pytest.raises(ModelFormatError, match="only 'skops' is served"):
        _build(model_dirs["bc_logreg"], _mlmodel(model_dirs, serialization_format=fmt))


def test_mlmodel_cannot_ask_to_trust_unsafe_types(model_dirs: dict[str, Path]) -> None:
    mlmodel = _mlmodel(model_dirs, skops_trusted_types=["numpy.dtype", "builtins.eval", "os.system"])
    with pytest.raises(ModelFormatError, match=r"outside numpy/scipy/sklearn: \['builtins.eval', 'os.system'\]"):
        _build(model_dirs["bc_logreg"], mlmodel)


def test_a_file_with_an_untrusted_function_is_refused(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = Pipeline([("double", FunctionTransformer(double)), ("model", skops.io.loads(
        (model_dirs["bc_logreg"] / "model.skops").read_bytes(),
        trusted=skops.io.get_untrusted_types(data=(model_dirs["bc_logreg"] / "model.skops").read_bytes()),
    ))])  # fmt: skip
    data = skops.io.dumps(model)
    name = f"{__name__}.double"
    assert name in skops.io.get_untrusted_types(data=data)
    with pytest.raises(ModelFormatError, match="double"):
        _build(tmp_path, _mlmodel(model_dirs), data)
    with pytest.raises(ModelFormatError, match="outside numpy/scipy/sklearn"):  # listing it does not help
        _build(tmp_path, _mlmodel(model_dirs, skops_trusted_types=[name]), data)


def test_a_corrupt_model_file_is_refused(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a readable skops file"):
        _build(tmp_path, _mlmodel(model_dirs), b"not a zip at all")


def test_a_model_without_dataset_spec_is_refused(model_dirs: dict[str, Path]) -> None:
    mlmodel = _mlmodel(model_dirs)
    del mlmodel["metadata"]["dataset_spec"]
    with pytest.raises(ModelFormatError, match="no 'dataset_spec'"):
        _build(model_dirs["bc_logreg"], mlmodel)


def test_a_spec_that_does_not_match_the_model_is_refused(model_dirs: dict[str, Path]) -> None:
    mlmodel = _mlmodel(model_dirs)
    mlmodel["metadata"]["dataset_spec"]["features"] = mlmodel["metadata"]["dataset_spec"]["features"][:10]
    with pytest.raises(ModelFormatError, match="expects 30 input columns but its dataset spec has 10"):
        _build(model_dirs["bc_logreg"], mlmodel)


def test_non_sklearn_models_are_refused(model_dirs: dict[str, Path]) -> None:
    mlmodel = _mlmodel(model_dirs)
    del mlmodel["flavors"]["sklearn"]
    with pytest.raises(ModelFormatError, match="no 'sklearn' flavor"):
        _build(model_dirs["bc_logreg"], mlmodel)


def test_registry_client_needs_an_http_tracking_uri() -> None:
    with pytest.raises(RegistryError, match="MLFLOW_TRACKING_URI must be the http"):
        MlflowRegistry(make_settings(tracking_uri="sqlite:///mlflow.db"))


def test_registry_client_reports_an_unreachable_server() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = MlflowRegistry(make_settings(tracking_uri=f"http://127.0.0.1:{port}", registry_timeout_s=2))
    with pytest.raises(RegistryUnavailableError, match="cannot reach MLflow"):
        client.resolve()


def test_registry_client_reads_file_artifacts(model_dirs: dict[str, Path]) -> None:
    client = MlflowRegistry(make_settings(tracking_uri="http://127.0.0.1:1"))
    assert client.fetch(_ref(model_dirs["bc_logreg"]), "MLmodel").startswith(b"flavors:")
