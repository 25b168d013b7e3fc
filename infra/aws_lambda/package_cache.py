"""The API's Lambda zip for a deployment: built with :mod:`.package_build` when missing or stale, else reused.

"Stale" is decided by content, never by file times: a digest of the build's inputs (every file under
``api/``, the project files the zip ships (``ml/__init__.py``, ``ml/spec.py``, ``ml/tasks.py``,
``ml/contracts.py``), ``uv.lock``, which pins every wheel, and the build module itself) is recorded next to the zip, in
``<zip>.inputs.json``, together with the zip's own SHA-256. The zip is rebuilt when it is missing, when
that record is missing, when the inputs' digest differs, or when the zip no longer is the one recorded
(replaced by hand). The check costs a few milliseconds (the zip is re-hashed only if its size or mtime
changed); a build takes ~30 s with a warm uv cache.

Public API: :func:`ensure_zip` ``(spec, root) -> ZipPackage``, :func:`zip_status`, :func:`inputs_digest`,
:func:`unzipped_size`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.aws_lambda.package_build import DIRECT_UPLOAD_LIMIT, PROJECT_FILES, UNZIPPED_LIMIT, ZIP_NAME
from infra.aws_lambda.spec import LAMBDA, REPO_ROOT, LambdaSpec, source_code_hash

#: What the zip is built from, relative to the repository: directories (every file below) and files.
INPUT_DIRS = ("api",)
#: The build module: before it moved out of ``api/`` it was an input as part of that directory.
BUILD_MODULE = "infra/aws_lambda/package_build.py"
INPUT_FILES = (*PROJECT_FILES, "uv.lock", BUILD_MODULE)
STAMP_SUFFIX = ".inputs.json"

__all__ = [
    "DIRECT_UPLOAD_LIMIT",
    "UNZIPPED_LIMIT",
    "ZipPackage",
    "ensure_zip",
    "input_files",
    "inputs_digest",
    "stamp_path",
    "unzipped_size",
    "zip_status",
]


@dataclass(frozen=True)
class ZipPackage:
    """A deployment package ready to upload."""

    path: Path
    code_sha256: str  #: base64 SHA-256, as Lambda reports it (``CodeSha256``)
    size: int
    built: bool  #: True if this call built it
    seconds: float  #: time spent here (check, plus build if any)
    reason: str  #: why it was (re)built, or why it is current


def input_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every input of the build, sorted (caches and compiled files excluded)."""
    files: set[Path] = set()
    for name in INPUT_DIRS:
        for path in (root / name).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                files.add(path)
    files.update(root / name for name in INPUT_FILES)
    return sorted(files)


def inputs_digest(root: Path = REPO_ROOT) -> str:
    """SHA-256 over the relative path and the content of every input file."""
    digest = hashlib.sha256()
    for path in input_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def stamp_path(zip_path: Path) -> Path:
    """Where the record of a zip's inputs lives: ``<zip>.inputs.json``."""
    return zip_path.with_name(zip_path.name + STAMP_SUFFIX)


def unzipped_size(zip_path: Path) -> int:
    """Sum of the uncompressed sizes of the archive's members (Lambda's 250 MiB limit applies to it)."""
    with zipfile.ZipFile(zip_path) as archive:
        return sum(info.file_size for info in archive.infolist())


def _read_stamp(zip_path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(stamp_path(zip_path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(zip_path: Path, digest: str, code_sha256: str) -> None:
    st = zip_path.stat()
    record = {
        "inputs_sha256": digest,
        "zip_sha256": code_sha256,
        "zip_size": st.st_size,
        "zip_mtime_ns": st.st_mtime_ns,
        "inputs": f"{', '.join(INPUT_DIRS)}/ and {', '.join(INPUT_FILES)}",
    }
    tmp = stamp_path(zip_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(stamp_path(zip_path))


def zip_status(spec: LambdaSpec = LAMBDA, root: Path = REPO_ROOT) -> tuple[bool, str, str | None]:
    """``(current, reason, code_sha256 or None)`` of the spec's zip, without building anything."""
    path = spec.zip_file(root)
    if not path.is_file():
        return False, f"{path} does not exist", None
    stamp = _read_stamp(path)
    if stamp is None:
        return False, f"no record of the inputs of {path} ({stamp_path(path).name})", None
    if stamp.get("inputs_sha256") != inputs_digest(root):
        return False, "api/, ml/spec.py, uv.lock or the build module changed since it was built", None
    st = path.stat()
    recorded = str(stamp.get("zip_sha256"))
    if stamp.get("zip_size") == st.st_size and stamp.get("zip_mtime_ns") == st.st_mtime_ns:
        return True, "inputs unchanged since the build", recorded
    actual = source_code_hash(path)
    if actual != recorded:
        return False, f"{path} is not the zip that was built from these inputs", None
    return True, "inputs unchanged since the build (zip touched, content identical)", actual


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two stacks starting at once build once
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(path: Path, root: Path, timeout: float) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    cmd = [sys.executable, "-m", "infra.aws_lambda.package_build", "--output-dir", str(path.parent)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"building the Lambda zip failed ({' '.join(cmd)} -> {done.returncode}):\n"
            f"{(done.stderr or done.stdout)[-3000:]}"
        )
    built = path.parent / ZIP_NAME
    if built != path:
        shutil.move(built, path)


def ensure_zip(
    spec: LambdaSpec = LAMBDA,
    root: Path = REPO_ROOT,
    out: Callable[[str], None] | None = None,
    timeout: float = 900.0,
) -> ZipPackage:
    """The spec's zip, built first (:mod:`.package_build`) if missing or stale; see the module doc.

    Raises RuntimeError if the build fails or the zip exceeds Lambda's 250 MiB unzipped limit.
    """
    say = out or (lambda _msg: None)
    t0 = time.monotonic()
    path = spec.zip_file(root)
    current, reason, code_sha256 = zip_status(spec, root)
    built = False
    if not current:
        with _build_lock(path.parent):
            current, reason2, code_sha256 = zip_status(spec, root)  # built meanwhile by someone else?
            if not current:
                say(f"building the Lambda zip ({reason}): python -m infra.aws_lambda.package_build")
                digest = inputs_digest(root)  # before the build: a change during it triggers the next one
                _build(path, root, timeout)
                code_sha256 = source_code_hash(path)
                _write_stamp(path, digest, code_sha256)
                built = True
            else:
                reason = reason2
    assert code_sha256 is not None
    if built:
        unzipped = unzipped_size(path)
        if unzipped >= UNZIPPED_LIMIT:
            raise RuntimeError(f"{path}: {unzipped / 2**20:.1f} MiB unzipped, above Lambda's 250 MiB limit")
        say(f"built {path} in {time.monotonic() - t0:.0f} s ({path.stat().st_size / 2**20:.1f} MiB zipped)")
    return ZipPackage(path, code_sha256, path.stat().st_size, built, time.monotonic() - t0, reason)


def main() -> None:
    """``python -m infra.aws_lambda.package_cache`` (``make lambda-zip``): build the zip if missing or stale."""
    package = ensure_zip(out=print)
    print(
        f"{package.path}: {package.size / 2**20:.1f} MiB zipped, {unzipped_size(package.path) / 2**20:.1f} MiB "
        f"unzipped ({'built' if package.built else 'up to date'}: {package.reason})"
    )


if __name__ == "__main__":
    main()
