"""The Lambda zip is rebuilt exactly when its inputs change (content, not file times); no real build here."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import pytest

from infra.aws_lambda import package_cache
from infra.aws_lambda.spec import LAMBDA, source_code_hash

pytestmark = pytest.mark.unit


BUILDS: list[Path] = []


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake repository with the build's inputs, and a fake build that zips api/."""
    root = tmp_path / "repo"
    (root / "api" / "routers").mkdir(parents=True)
    (root / "ml").mkdir()
    (root / "api" / "main.py").write_text("app = 1\n")
    (root / "api" / "routers" / "predict.py").write_text("x = 1\n")
    (root / "ml" / "__init__.py").write_text("")
    (root / "ml" / "spec.py").write_text("SPEC = 1\n")
    (root / "ml" / "contracts.py").write_text("CONTRACT = 1\n")
    (root / "ml" / "tasks.py").write_text("TASKS = 1\n")
    (root / "uv.lock").write_text("version = 1\n")
    (root / "infra" / "aws_lambda").mkdir(parents=True)
    (root / "infra" / "aws_lambda" / "package_build.py").write_text("BUILD = 1\n")
    builds = BUILDS
    builds.clear()

    def fake_build(path: Path, root_: Path, timeout: float) -> None:
        builds.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as z:
            for f in sorted((root_ / "api").rglob("*.py")):
                z.writestr(f.relative_to(root_).as_posix(), f.read_text())

    monkeypatch.setattr(package_cache, "_build", fake_build)
    return root


def test_inputs_are_the_api_the_shipped_ml_files_the_lock_and_the_builder(repo: Path) -> None:
    (repo / "api" / "__pycache__").mkdir()
    (repo / "api" / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"x")
    names = [p.relative_to(repo).as_posix() for p in package_cache.input_files(repo)]
    assert names == [
        "api/main.py",
        "api/routers/predict.py",
        "infra/aws_lambda/package_build.py",
        "ml/__init__.py",
        "ml/contracts.py",
        "ml/spec.py",
        "ml/tasks.py",
        "uv.lock",
    ]


def test_built_when_missing_then_reused_then_rebuilt_on_change(repo: Path) -> None:
    builds = BUILDS
    first = package_cache.ensure_zip(LAMBDA, repo)
    assert first.built and len(builds) == 1 and "does not exist" in first.reason
    assert first.code_sha256 == source_code_hash(first.path)
    assert package_cache.stamp_path(first.path).is_file()

    again = package_cache.ensure_zip(LAMBDA, repo)
    assert not again.built and len(builds) == 1 and again.code_sha256 == first.code_sha256

    for changed in ("api/routers/predict.py", "ml/spec.py", "uv.lock", "infra/aws_lambda/package_build.py"):
        (repo / changed).write_text((repo / changed).read_text() + "# changed\n")
        assert package_cache.zip_status(LAMBDA, repo)[0] is False
        assert package_cache.ensure_zip(LAMBDA, repo).built
    assert len(builds) == 5
    (repo / "ml" / "settings.py").write_text("not shipped\n")  # not an input of the zip
    assert not package_cache.ensure_zip(LAMBDA, repo).built


def test_a_touched_zip_is_current_a_replaced_one_is_not(repo: Path) -> None:
    package = package_cache.ensure_zip(LAMBDA, repo)
    st = package.path.stat()
    os.utime(package.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    current, reason, digest = package_cache.zip_status(LAMBDA, repo)
    assert current and "content identical" in reason and digest == package.code_sha256
    package.path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip built by someone else
    current, reason, _ = package_cache.zip_status(LAMBDA, repo)
    assert not current and "is not the zip" in reason
    assert package_cache.ensure_zip(LAMBDA, repo).built


def test_no_record_means_stale(repo: Path) -> None:
    package = package_cache.ensure_zip(LAMBDA, repo)
    package_cache.stamp_path(package.path).unlink()
    assert package_cache.zip_status(LAMBDA, repo)[1].startswith("no record of the inputs")


def test_other_zip_names_and_sizes(repo: Path, tmp_path: Path) -> None:
    spec = dataclasses.replace(LAMBDA, zip_path=tmp_path / "out" / "custom.zip")
    package = package_cache.ensure_zip(spec, repo)
    assert package.path == tmp_path / "out" / "custom.zip" and package.built
    assert package_cache.unzipped_size(package.path) == len("app = 1\n") + len("x = 1\n")
    assert package_cache.DIRECT_UPLOAD_LIMIT == 50_000_000 and package_cache.UNZIPPED_LIMIT == 250 * 2**20
