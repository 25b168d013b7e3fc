"""Build the API's Lambda deployment zip reproducibly (``python -m infra.aws_lambda.package_build``).

Output: ``build/lambda/api-lambda.zip``. Steps (each one deterministic, so two builds of the same commit are
byte-identical):

1. ``uv export --frozen --extra api --no-dev``: the exact versions of the ``api`` extra from ``uv.lock``,
   minus what only a long-running server needs (gunicorn, uvicorn and its extras: Lambda talks to Mangum, not HTTP)
   and the AWS SDK (boto3 and its dependencies, 37 MiB): every Lambda Python runtime provides it, and the
   service needs it only for ``s3://`` artifact URIs (``--with-aws-sdk`` bundles the locked version);
2. ``uv pip install --target ... --python-platform x86_64-manylinux2014 --python-version 3.12
   --only-binary :all: --no-deps``: manylinux wheels for the ``python3.12`` runtime, whatever this
   machine runs;
3. the service's code: the ``api`` package and the light part of ``ml`` it imports
   (``ml/__init__.py``, ``ml/spec.py``, ``ml/tasks.py``, ``ml/contracts.py``: pydantic and PyYAML only);
4. strip what never runs: test suites, caches, C/Cython sources and headers, type stubs, ``RECORD`` files
   (shared libraries are left alone: ``strip`` breaks the ones auditwheel patched, e.g. SciPy's OpenBLAS
   fails with "ELF load command address/offset not page-aligned");
5. precompile every module with a Python 3.12 interpreter into ``__pycache__`` (unchecked-hash pycs, so
   they stay valid whatever the file times; ``PYTHONHASHSEED=0``; source paths recorded as
   ``/var/task/...``): Lambda's ``/var/task`` is read-only, so without them every cold start would
   compile scikit-learn, SciPy and FastAPI again;
6. zip in sorted order with fixed timestamps (1980-01-01) and permissions.

Lambda limits: 250 MiB unzipped (layers included), 50 MB zipped for a direct upload (larger zips go
through S3). The build prints both sizes and fails above 250 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from infra.aws_lambda.interpreters import python_mismatch

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / "build" / "lambda"
ZIP_NAME = "api-lambda.zip"
PYTHON_VERSION = "3.12"
PLATFORM = "x86_64-manylinux_2_28"
UNZIPPED_LIMIT = 250 * 1024 * 1024
DIRECT_UPLOAD_LIMIT = 50 * 1000 * 1000
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

#: Only a long-running HTTP server needs these; in Lambda, Mangum calls the app directly.
SERVER_ONLY = frozenset(
    {"gunicorn", "uvicorn", "uvicorn-worker", "uvloop", "httptools", "watchfiles", "websockets", "h11", "click"}
)
#: The AWS SDK: part of every Lambda Python runtime (``/var/runtime``), bundled only on request.
AWS_SDK = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})
#: Directory names removed anywhere in the package tree.
STRIP_DIRS = frozenset({"tests", "__pycache__"})
#: File suffixes removed anywhere (sources of compiled extensions, headers, stubs).
STRIP_SUFFIXES = (".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp")
#: Project files shipped with the code (paths relative to the repository).
PROJECT_FILES = ("ml/__init__.py", "ml/spec.py", "ml/tasks.py", "ml/contracts.py")


def _run(cmd: list[str]) -> str:
    # UV_COMPILE_BYTECODE (set by the Makefile for .venv) would contradict --no-compile: this build
    # compiles with the target's Python 3.12 itself, deterministically.
    env = {k: v for k, v in os.environ.items() if k != "UV_COMPILE_BYTECODE"}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-4000:]}")
    return str(done.stdout)


def find_uv() -> str:
    """The ``uv`` executable (``$UV``, PATH, or the Makefile's ``.tools/bin/uv``)."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(REPO / ".tools" / "bin" / "uv")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("uv not found: install it (pip install uv) or run `make venv` first")


def _is_python312(candidate: str) -> bool:
    return python_mismatch(candidate, PYTHON_VERSION) is None  # pyenv shims may refuse to run


def find_python312() -> str | None:
    """A Python 3.12 interpreter for precompiling (``$MLOPS_PYTHON_3_12``, pyenv, PATH, ``uv python find``)."""
    candidates = [os.environ.get("MLOPS_PYTHON_3_12")]
    candidates += sorted((str(p) for p in Path.home().glob(".pyenv/versions/3.12.*/bin/python3.12")), reverse=True)
    candidates += [shutil.which("python3.12")]
    for candidate in filter(None, candidates):
        if _is_python312(candidate):
            return candidate
    try:
        found = _run([find_uv(), "python", "find", "--no-python-downloads", PYTHON_VERSION]).strip()
    except SystemExit:
        return None
    return found if found and _is_python312(found) else None


def requirements(uv: str, with_aws_sdk: bool = False) -> list[str]:
    """Pinned requirement lines of the ``api`` extra for Lambda (server-only packages and the SDK left out)."""
    selection = ["--frozen", "--extra", "api", "--no-dev", "--no-emit-project"]
    exported = _run([uv, "export", *selection, "--no-hashes", "--no-annotate", "--no-header"])
    leave_out = SERVER_ONLY if with_aws_sdk else SERVER_ONLY | AWS_SDK
    lines = []
    for line in exported.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower().replace("_", "-")
        if name not in leave_out:
            lines.append(line)
    return lines


def install(uv: str, reqs: list[str], target: Path) -> None:
    """Install the pinned wheels for the Lambda platform into ``target``."""
    req_file = target.parent / "requirements.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    platform = ["--python-platform", PLATFORM, "--python-version", PYTHON_VERSION, "--only-binary", ":all:"]
    options = ["--no-deps", "--no-compile", "--link-mode", "copy", "--quiet"]
    _run([uv, "pip", "install", "--target", str(target), "--requirement", str(req_file), *platform, *options])


def copy_project(target: Path) -> None:
    """The ``api`` package and the light ``ml`` modules it imports."""
    for source in sorted((REPO / "api").rglob("*.py")):
        if "__pycache__" in source.parts:
            continue
        dest = target / source.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    for relative in PROJECT_FILES:
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, dest)


def _is_record(path: Path) -> bool:
    return path.name == "RECORD" and path.parent.name.endswith(".dist-info")  # stale once tests are stripped


def strip(target: Path) -> None:
    """Remove test suites, caches, sources of extensions, stubs and RECORD files."""
    for path in sorted(target.rglob("*"), reverse=True):  # children before parents
        if path.is_dir() and path.name in STRIP_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in STRIP_SUFFIXES or (path.name == "RECORD" and ".dist-info" in str(path))
        ):
            path.unlink()
    for path in sorted(target.glob("bin")):  # console scripts point at the build machine's interpreter
        shutil.rmtree(path)


def precompile(target: Path, python: str) -> None:
    """Compile every module to deterministic unchecked-hash pycs, recording ``/var/task/...`` as the path."""
    options = ["-q", "-j", "0", "--invalidation-mode", "unchecked-hash", "-s", str(target), "-p", "/var/task"]
    _run([python, "-m", "compileall", *options, str(target)])


def _files(target: Path) -> Iterable[Path]:
    return sorted((p for p in target.rglob("*") if p.is_file()), key=lambda p: p.relative_to(target).as_posix())


def write_zip(target: Path, output: Path) -> int:
    """Zip ``target`` deterministically; returns the unzipped size in bytes."""
    total = 0
    tmp = output.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for path in _files(target):
            info = zipfile.ZipInfo(path.relative_to(target).as_posix(), date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the permissions below are honoured
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r-- (nothing in the package is executed)
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            archive.writestr(info, data, compresslevel=6)
    tmp.replace(output)
    return total


def build(
    output_dir: Path = BUILD_DIR, compile_bytecode: bool = True, with_aws_sdk: bool = False
) -> tuple[Path, int, int]:
    """Build the zip; returns ``(path, zipped bytes, unzipped bytes)``."""
    uv = find_uv()
    package = output_dir / "package"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    install(uv, requirements(uv, with_aws_sdk), package)
    copy_project(package)
    strip(package)
    if compile_bytecode:
        python = find_python312()
        if python is None:
            print("warning: no Python 3.12 found; the zip has no precompiled bytecode (slower cold starts)")
        else:
            precompile(package, python)
    output = output_dir / ZIP_NAME
    unzipped = write_zip(package, output)
    return output, output.stat().st_size, unzipped


def main(argv: list[str] | None = None) -> int:
    """Command line: build, print the sizes, fail above Lambda's unzipped limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output-dir", type=Path, default=BUILD_DIR, help="where to build (default: build/lambda)")
    parser.add_argument("--no-compile", action="store_true", help="leave out precompiled bytecode")
    parser.add_argument("--with-aws-sdk", action="store_true", help="bundle boto3 instead of the runtime's")
    args = parser.parse_args(argv)
    path, zipped, unzipped = build(args.output_dir, not args.no_compile, args.with_aws_sdk)
    mib = 1024 * 1024
    print(f"{path}: {zipped / mib:.1f} MiB zipped, {unzipped / mib:.1f} MiB unzipped (Lambda limit 250 MiB)")
    if zipped > DIRECT_UPLOAD_LIMIT:
        print("note: above 50 MB zipped, upload it through an S3 bucket (direct upload limit)")
    if unzipped > UNZIPPED_LIMIT:
        print("error: above Lambda's 250 MiB unzipped limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
