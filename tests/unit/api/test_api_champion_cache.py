"""Serving without waiting on MLflow: the champion cache, time-bounded checks, and checks off the request path.

A fake registry that stalls (like a SIGSTOPped MLflow) or is down, the champion cache in temporary
directories (``shared`` stands for the S3 copy that several instances read), and moto for the S3 store.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.champion_cache import (
    BlobUnavailableError,
    ChampionCache,
    LocalBlobs,
    S3Blobs,
    SnapshotLayout,
    SnapshotPointer,
    SnapshotStore,
    build_cache,
)
from api.lambda_handler import build_handler
from api.main import create_app
from api.model_store import REGISTRY_GRACE_S, ModelStore, RefreshResult
from api.registry_client import MlflowRegistry, ModelRef, RegistryUnavailableError
from tests.datasets import breast_cancer_record
from tests.support.moto_s3 import running_moto_s3
from tests.unit.api.conftest import make_settings
from tests.unit.api.fakes import FakeRegistry
from tests.unit.api.lambda_events import LambdaContext, event, response_body

pytestmark = pytest.mark.unit

LAYOUT = SnapshotLayout("test_model", "champion")


def make_cache(root: Path, instance: str = "a", publish: bool = True, shared: bool = True) -> ChampionCache:
    """The cache of one API instance: its own local directory, and the ``shared`` directory standing in for S3."""
    local = SnapshotStore(LocalBlobs(root / instance), LAYOUT, "local")
    remote = SnapshotStore(LocalBlobs(root / "shared"), LAYOUT, "s3") if shared else None
    return ChampionCache(local, remote, publish)


def make_store(registry: FakeRegistry, cache: ChampionCache, **overrides: Any) -> ModelStore:
    return ModelStore(make_settings(**overrides), registry, cache)


def loaded_versions(store: ModelStore) -> list[tuple[str, str]]:
    """Record every bundle the store serves after a check: (version, where from)."""
    seen: list[tuple[str, str]] = []

    def listener(result: RefreshResult) -> None:
        if result.outcome == "loaded" and result.bundle is not None:
            seen.append((result.bundle.ref.version, result.bundle.source_origin.kind))

    store.add_listener(listener)
    return seen


@pytest.fixture
def warm_cache(tmp_path: Path, registry: FakeRegistry) -> Path:
    """Version 1 loaded from the registry once, so that instance ``a`` and S3 hold its snapshot."""
    store = make_store(registry, make_cache(tmp_path))
    assert store.start() is not None
    return tmp_path


# ------------------------------------------------------------------------------------------------- the cache
def test_a_champion_loaded_from_the_registry_is_written_with_checksums(warm_cache: Path) -> None:
    for root in (warm_cache / "a", warm_cache / "shared"):
        pointer = SnapshotPointer.from_json((root / LAYOUT.pointer_key).read_bytes(), LAYOUT)
        assert pointer.version == "1" and pointer.model_id == "m-1" and pointer.data_version
        assert {f.name for f in pointer.files} == {"MLmodel", "model.skops"}
        for entry in pointer.files:
            assert (root / LAYOUT.file_key("1", entry.name)).stat().st_size == entry.size
        assert abs(pointer.observed_at - time.time()) < 60


def test_a_new_instance_serves_the_cached_champion_while_the_registry_is_down(
    warm_cache: Path, registry: FakeRegistry
) -> None:
    registry.down = True
    settings = make_settings(poll_interval_s=0)
    store = ModelStore(settings, registry, make_cache(warm_cache, instance="a"))
    with TestClient(create_app(settings, store)) as client:
        assert client.post("/predict", json=breast_cancer_record()).json()["model"]["version"] == "1"
        assert store.wait_for_check(5)
        ready = client.get("/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["model"]["loaded_from"]["kind"] == "cache"
        assert body["model"]["loaded_from"]["location"].startswith(str(warm_cache / "a"))
        assert body["registry"]["reachable"] is False and "connection refused" in body["registry"]["last_error"]
        assert "champion cache" in body["message"] and "unreachable" in body["message"]
        assert body["model"]["registry_confirmed_at"] is None
        info = client.get("/model").json()
        assert info["loaded_from"]["kind"] == "cache" and info["registry"]["reachable"] is False
        assert 'mlops_api_model_from_cache{model="breast_cancer"} 1.0' in client.get("/metrics").text


def test_an_instance_without_a_local_copy_serves_the_s3_copy_and_keeps_it_locally(
    warm_cache: Path, registry: FakeRegistry
) -> None:
    registry.down = True
    store = make_store(registry, make_cache(warm_cache, instance="new-environment"))
    bundle = store.start()
    assert bundle is not None and bundle.ref.version == "1"
    assert bundle.source_origin.kind == "cache" and "shared" in bundle.source_origin.location
    assert (warm_cache / "new-environment" / LAYOUT.pointer_key).is_file()


def test_start_does_not_wait_for_a_stalled_registry(warm_cache: Path, registry: FakeRegistry) -> None:
    registry.stall_s = 3.0  # every request waits 3 s, then times out: a SIGSTOPped MLflow
    store = make_store(registry, make_cache(warm_cache))
    started = time.perf_counter()
    bundle = store.start()
    took = time.perf_counter() - started
    assert bundle is not None and bundle.ref.version == "1" and bundle.source_origin.kind == "cache"
    assert took < 2.0, f"start waited {took:.2f} s on the registry"
    assert store.status.reachable is None  # the check is still running in the background
    assert store.wait_for_check(10)
    assert store.status.reachable is False and "no answer within 3 s" in (store.status.last_error or "")


def test_a_new_environment_serves_the_s3_copy_without_waiting_for_a_stalled_registry(
    warm_cache: Path, registry: FakeRegistry
) -> None:
    """A Lambda cold start while MLflow is SIGSTOPped: the S3 copy at once, the check in the background."""
    registry.stall_s = 3.0
    store = make_store(registry, make_cache(warm_cache, instance="new-environment"))
    started = time.perf_counter()
    bundle = store.start()
    took = time.perf_counter() - started
    assert bundle is not None and bundle.ref.version == "1" and "shared" in bundle.source_origin.location
    assert took < REGISTRY_GRACE_S + 1.0, f"start waited {took:.2f} s on the registry"
    assert store.wait_for_check(10)
    assert store.status.reachable is False and store.bundle is bundle


def test_a_new_environment_serves_the_registry_s_version_when_it_answers_within_the_grace(
    warm_cache: Path, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    """A healthy registry still decides at a cold start: the stale S3 copy is never served."""
    registry.publish("2", model_dirs["bc_hgb"])
    original = registry.resolve

    def slower_than_s3() -> ModelRef:
        time.sleep(REGISTRY_GRACE_S / 2)
        return original()

    registry.resolve = slower_than_s3  # type: ignore[method-assign]
    store = make_store(registry, make_cache(warm_cache, instance="new-environment"))
    served = loaded_versions(store)
    bundle = store.start()
    assert bundle is not None and bundle.ref.version == "2" and bundle.source_origin.kind == "registry"
    assert served == [("2", "registry")]


def test_a_cached_champion_is_not_served_when_the_registry_names_another_version(
    warm_cache: Path, registry: FakeRegistry, model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    registry.publish("2", model_dirs["bc_hgb"])  # promoted while the instance was down
    store = make_store(registry, make_cache(warm_cache))
    served = loaded_versions(store)
    original = store._build_snapshot

    def slow_build(snapshot: Any) -> Any:  # the registry answers before the cached copy is loaded
        time.sleep(0.3)
        return original(snapshot)

    store._build_snapshot = slow_build  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="api.model_store"):
        bundle = store.start()
    assert bundle is not None and bundle.ref.version == "2" and bundle.source_origin.kind == "registry"
    assert served == [("2", "registry")]  # version 1 was never served, not even for a moment
    assert "registry names version 2: not served" in caplog.text
    pointer = SnapshotPointer.from_json((warm_cache / "a" / LAYOUT.pointer_key).read_bytes(), LAYOUT)
    assert pointer.version == "2"


def test_a_registry_that_answers_late_replaces_the_cached_champion(
    warm_cache: Path, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    registry.publish("2", model_dirs["bc_hgb"])
    store = make_store(registry, make_cache(warm_cache))
    original = registry.resolve

    def late() -> ModelRef:
        time.sleep(0.5)
        return original()

    registry.resolve = late  # type: ignore[method-assign]
    bundle = store.start()
    assert bundle is not None and bundle.ref.version == "1" and bundle.source_origin.kind == "cache"
    assert store.wait_for_check(10)
    assert store.bundle is not None and store.bundle.ref.version == "2"
    assert store.bundle.source_origin.kind == "registry"


def test_an_older_snapshot_never_replaces_what_is_served(
    tmp_path: Path, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    old = make_store(registry, make_cache(tmp_path, instance="old"))
    old.start()  # version 1 in S3, observed now
    time.sleep(0.01)
    registry.publish("2", model_dirs["bc_hgb"])
    store = make_store(registry, make_cache(tmp_path, instance="b", publish=False))
    store.start()
    assert store.bundle is not None and store.bundle.ref.version == "2"
    registry.down = True
    result = store.refresh()
    assert result.outcome == "failed" and store.bundle.ref.version == "2"


def test_a_newer_snapshot_is_served_while_the_registry_is_unreachable(
    tmp_path: Path, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    store = make_store(registry, make_cache(tmp_path, instance="b"))
    store.start()
    assert store.bundle is not None and store.bundle.ref.version == "1"
    time.sleep(0.01)
    registry.publish("2", model_dirs["bc_hgb"])
    other = make_store(registry, make_cache(tmp_path, instance="c"))
    other.start()  # another instance loads version 2 and publishes it
    registry.down = True  # before this instance noticed version 2
    result = store.refresh()
    assert result.outcome == "loaded" and isinstance(result.error, RegistryUnavailableError)
    assert store.bundle is not None and store.bundle.ref.version == "2"
    assert store.bundle.source_origin.kind == "cache" and store.status.reachable is False


def _corrupt(root: Path, how: str) -> None:
    if how == "flipped byte":
        path = root / LAYOUT.file_key("1", "model.skops")
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "missing file":
        (root / LAYOUT.file_key("1", "model.skops")).unlink()
    elif how == "truncated file":
        path = root / LAYOUT.file_key("1", "MLmodel")
        path.write_bytes(path.read_bytes()[:100])
    elif how == "garbage pointer":
        (root / LAYOUT.pointer_key).write_bytes(b'{"format": 1, "version": ')
    elif how == "other model":
        pointer = json.loads((root / LAYOUT.pointer_key).read_bytes())
        (root / LAYOUT.pointer_key).write_text(json.dumps(pointer | {"model_name": "someone_else"}))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("flipped byte", "fails its checksum"),
        ("missing file", "missing (partial snapshot)"),
        ("truncated file", "fails its checksum"),
        ("garbage pointer", "unreadable pointer"),
        ("other model", "not test_model@champion"),
    ],
)
def test_a_corrupt_or_partial_cache_is_rejected_with_a_clear_log_line(
    warm_cache: Path, registry: FakeRegistry, caplog: pytest.LogCaptureFixture, how: str, reason: str
) -> None:
    _corrupt(warm_cache / "a", how)
    registry.down = True
    store = make_store(registry, make_cache(warm_cache, shared=False))
    with caplog.at_level(logging.WARNING):
        assert store.start() is None
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert rejected and reason in rejected[0] and str(warm_cache / "a") in rejected[0], caplog.text


def test_a_corrupt_local_copy_falls_back_to_the_s3_copy(warm_cache: Path, registry: FakeRegistry) -> None:
    _corrupt(warm_cache / "a", "flipped byte")
    registry.down = True
    bundle = make_store(registry, make_cache(warm_cache)).start()
    assert bundle is not None and bundle.ref.version == "1" and "shared" in bundle.source_origin.location


def test_the_cache_is_not_used_when_the_registry_says_there_is_no_champion(warm_cache: Path) -> None:
    empty = FakeRegistry()  # reachable, no version holds the alias
    store = make_store(empty, make_cache(warm_cache))
    original = store._build_snapshot

    def slow_build(snapshot: Any) -> Any:  # the registry answers before the cached copy is loaded
        time.sleep(0.3)
        return original(snapshot)

    store._build_snapshot = slow_build  # type: ignore[method-assign]
    assert store.start() is None


def test_lambda_does_not_publish_and_a_cache_started_instance_publishes_once(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    lambda_store = make_store(registry, make_cache(tmp_path, instance="lambda", publish=False))
    lambda_store.start()
    assert (tmp_path / "lambda" / LAYOUT.pointer_key).is_file()
    assert not (tmp_path / "shared").exists()
    # an instance that starts from its local copy publishes it to S3 once the registry confirms it
    store = make_store(registry, make_cache(tmp_path, instance="lambda"))
    store.start()
    assert store.wait_for_check(5)
    assert (tmp_path / "shared" / LAYOUT.pointer_key).is_file()


def test_the_lambda_module_never_publishes(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLOPS_MODEL_NAME", "lambda_unit_test_model")
    monkeypatch.setenv("MLOPS_API_CACHE_DIR", "off")
    sys.modules.pop("api.lambda_handler", None)
    try:
        module = importlib.import_module("api.lambda_handler")
        assert module.settings.cache_publish is False
    finally:
        sys.modules.pop("api.lambda_handler", None)


def test_the_local_cache_keeps_two_versions(
    tmp_path: Path, registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    store = make_store(registry, make_cache(tmp_path, shared=False))
    store.start()
    for version in ("2", "3"):
        registry.publish(version, model_dirs["bc_hgb" if version == "2" else "bc_logreg"])
        assert store.refresh().outcome == "loaded"
    kept = sorted(p.name for p in (tmp_path / "a" / LAYOUT.prefix).glob("v*"))
    assert kept == ["v2", "v3"]


# ------------------------------------------------------------------------------------------------- timeouts
@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) but never answers: a stopped process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_an_alias_check_gives_up_after_the_check_timeout(silent_server: int) -> None:
    settings = make_settings(
        tracking_uri=f"http://127.0.0.1:{silent_server}", check_timeout_s=0.5, registry_timeout_s=10
    )
    client = MlflowRegistry(settings)
    started = time.perf_counter()
    with pytest.raises(RegistryUnavailableError) as failure:
        client.resolve()
    assert time.perf_counter() - started < 2.0
    assert "no answer within 0.5 s" in str(failure.value)


def test_lambda_invocations_never_wait_for_a_stalled_registry(registry: FakeRegistry) -> None:
    settings = make_settings(poll_interval_s=0.2)
    store = ModelStore(settings, registry)
    store.ensure_loaded()
    handler = build_handler(settings, store)
    registry.stall_s = 1.5
    resolves = registry.resolves
    slowest = 0.0
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = handler(event("function_url", "POST", "/predict", breast_cancer_record()), LambdaContext())
        slowest = max(slowest, time.perf_counter() - started)
        assert response["statusCode"] == 200 and response_body(response)["model"]["version"] == "1"
        time.sleep(0.05)
    assert slowest < 0.5, f"an invocation took {slowest:.2f} s"
    assert registry.resolves == resolves + 1  # one check in flight, however many invocations came meanwhile
    assert store.wait_for_check(5)
    assert store.status.reachable is False


def test_a_lambda_without_a_model_answers_503_at_once_and_loads_in_the_background(
    registry: FakeRegistry, model_dirs: dict[str, Path]
) -> None:
    empty = FakeRegistry()
    settings = make_settings(retry_interval_s=0)
    store = ModelStore(settings, empty)
    store.start()
    handler = build_handler(settings, store)
    empty.publish("1", model_dirs["bc_logreg"])
    empty.stall_s = 0.3
    assert handler(event("rest_v1", "POST", "/predict", breast_cancer_record()), LambdaContext())["statusCode"] == 503
    assert store.wait_for_check(5)
    empty.stall_s = 0
    handler(event("rest_v1", "GET", "/health"), LambdaContext())
    assert store.wait_for_check(5)
    assert handler(event("rest_v1", "POST", "/predict", breast_cancer_record()), LambdaContext())["statusCode"] == 200


# ------------------------------------------------------------------------------------------------- S3
@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    with running_moto_s3() as url:
        yield url


def test_the_s3_store_round_trips_and_reports_outages(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="mlflow")
    cache = build_cache("http://mlflow:5001", "m", "champion", None, "s3://mlflow/champion-cache", moto_s3, 2.0, True)
    assert cache.remote is not None and cache.newest() is None
    ref = ModelRef("m", "7", "champion", "models:/m-7", "mlflow-artifacts:/x")
    cache.save(
        ref, {"MLmodel": b"flavors: {}", "model.skops": b"\x00" * 1000}, time.time(), "v-1", "http://mlflow:5001"
    )
    snapshot = cache.newest()
    assert snapshot is not None and snapshot.pointer.version == "7"
    assert snapshot.files()["model.skops"] == b"\x00" * 1000
    assert snapshot.location == "s3://mlflow/champion-cache/m/champion/v7"

    with socket.socket() as silent:  # an S3 endpoint that never answers: bounded by the check timeout
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        blobs = S3Blobs("s3://mlflow/x", f"http://127.0.0.1:{silent.getsockname()[1]}", 0.3, 0.3)
        started = time.perf_counter()
        with pytest.raises(BlobUnavailableError):
            blobs.get("pointer.json")
        assert time.perf_counter() - started < 5.0


def test_concurrent_start_and_check_swap_consistently(warm_cache: Path, registry: FakeRegistry) -> None:
    store = make_store(registry, make_cache(warm_cache))
    threads = [threading.Thread(target=store.start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.wait_for_check(5)
    assert store.bundle is not None and store.bundle.ref.version == "1"
    assert store.status.reachable is True and store.confirmed_at is not None
