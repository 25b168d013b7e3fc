"""LocalStack in host mode (no Docker): its own locked environments, and the command line that starts it.

Importable from the project's environment (Python >= 3.11; standard library plus the ``uv`` executable).

Why separate environments
-------------------------
LocalStack 2026.3.0 needs Python >= 3.13 (``from warnings import deprecated``) and pins of its own, while
the project runs on 3.11. A Lambda function must run on the interpreter of its runtime: the API's zip
carries cp312 wheels, so ``python3.12`` functions need a 3.12 interpreter. Hence, under a state directory:

* ``<state_dir>/localstack-venv``   Python 3.13, from ``infra/aws_lambda/localstack-env/uv.lock``: LocalStack and the
  local-process executor plugin (``infra/aws_lambda/localstack_plugin``);
* ``<state_dir>/lambda-python3.12`` Python 3.12, from ``infra/aws_lambda/lambda-runtime-env/uv.lock``: the runtime
  of ``python3.12`` functions (awslambdaric, boto3), as AWS's images provide it.

Both are created with ``uv sync --frozen`` and stamped with a digest of their inputs: a call when they are
up to date costs a few milliseconds. Interpreters are never downloaded (``UV_PYTHON_DOWNLOADS=never``).

Public API
----------
* :func:`find_python` / :func:`find_localstack_python` -> ``Path | None``; :func:`explain_python_search`
  tells why nothing was found.
* :func:`ensure_venv` ``(state_dir) -> Path`` (LocalStack's venv), :func:`ensure_lambda_runtime`
  ``(state_dir, runtime="python3.12") -> Path`` (the runtime's interpreter).
* :func:`localstack_command_and_env` ``(venv, state_dir, port, lambda_pythons=...) -> (argv, env)``.
* :func:`health_url`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

# The plugin's names, defined once in the plugin (stdlib-only, importable here): the LocalStack release it
# targets (it checks it at load time), its executor and gateway-server entry points, its variables.
from infra.aws_lambda.interpreters import python_mismatch
from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda import (
    EXECUTOR_NAME,
    GATEWAY_SERVER_NAME,
    PORTS_ENV,
    PYTHONS_ENV,
)
from infra.aws_lambda.localstack_plugin.mlops_localstack_lambda import (
    LOCALSTACK_VERSION as LOCALSTACK_VERSION,  # re-exported: the release the lock and the venv pin
)

HERE = Path(__file__).resolve().parent
LOCALSTACK_PROJECT_DIR = HERE / "localstack-env"
PLUGIN_DIR = HERE / "localstack_plugin"
RUNTIME_PROJECT_DIR = HERE / "lambda-runtime-env"
REPO_ROOT = HERE.parent.parent

#: Interpreter LocalStack 2026.3.0 needs.
LOCALSTACK_PYTHON = "3.13"
VENV_NAME = "localstack-venv"
PLUGIN_DISTRIBUTION = "mlops-localstack-lambda-executor"
HEALTH_PATH = "/_localstack/health"
_STAMP = ".mlops-env-digest"


# ---------------------------------------------------------------------------------------------------------
# Interpreters
# ---------------------------------------------------------------------------------------------------------
def _override_var(version: str) -> str:
    return "MLOPS_PYTHON_" + version.replace(".", "_")


def _candidates(version: str) -> Iterator[tuple[str, str]]:
    """(origin, path) of every place an interpreter ``version`` (``"3.13"``) may be, in order of preference."""
    if override := os.environ.get(_override_var(version)):
        yield _override_var(version), override
    if found := shutil.which(f"python{version}"):
        yield "PATH", found
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    seen: set[str] = set()
    for root in filter(None, roots):
        if root in seen:
            continue
        seen.add(root)
        pattern = os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")
        for path in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            yield "pyenv", path
    for path in (f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"):
        yield "system", path
    uv = find_uv()
    if uv:
        try:
            out = subprocess.run(
                [uv, "python", "find", "--no-python-downloads", version],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
            )
            if out.returncode == 0 and out.stdout.strip():
                yield "uv python find", out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.parent.name  # versions/3.13.0/bin/python3.13
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


@functools.cache
def _search(version: str) -> tuple[Path | None, tuple[str, ...]]:
    notes: list[str] = []
    tried: set[str] = set()
    for origin, path in _candidates(version):
        if path in tried:
            continue
        tried.add(path)
        problem = python_mismatch(path, version)
        if problem is None:
            return Path(path), tuple(notes)
        notes.append(f"{path} ({origin}) {problem}")
    return None, tuple(notes)


def find_python(version: str) -> Path | None:
    """An interpreter of Python ``version`` (e.g. ``"3.12"``), or None; see :func:`explain_python_search`.

    Looked up in order: ``$MLOPS_PYTHON_3_12``, ``python3.12`` on PATH, pyenv's ``versions/3.12.*``
    (newest first; shims that refuse are skipped), /usr/local/bin, /usr/bin, ``uv python find``. Every
    candidate is run once to check its version. Never downloads an interpreter.
    """
    return _search(version)[0]


def find_localstack_python() -> Path | None:
    """The interpreter for LocalStack 2026.3.0 (Python 3.13), or None."""
    return find_python(LOCALSTACK_PYTHON)


def explain_python_search(version: str) -> str:
    """Why :func:`find_python` found no interpreter of ``version`` (every candidate and its problem)."""
    found, notes = _search(version)
    if found:
        return f"Python {version} found at {found}"
    tried = "; ".join(notes) or "no candidate at all"
    return (
        f"no Python {version} interpreter found (tried: {tried}). Install one (pyenv install {version}, "
        f"apt install python{version}) or point {_override_var(version)} at it"
    )


def find_uv() -> str | None:
    """The ``uv`` executable: ``$UV``, PATH, the repo's ``.tools/bin/uv`` (Makefile) or the ``uv`` package."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(REPO_ROOT / ".tools" / "bin" / "uv")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------------------
def _digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(str(path.relative_to(HERE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _plugin_files() -> list[Path]:
    return sorted(
        p
        for p in PLUGIN_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",) and ".egg-info" not in str(p)
    )


@contextlib.contextmanager
def _locked(state_dir: Path, name: str) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions / stack starts share one venv
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sync(project: Path, venv: Path, python: Path, digest: str, reinstall: tuple[str, ...] = ()) -> None:
    stamp = venv / _STAMP
    if (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text() == digest:
        return
    uv = find_uv()
    if uv is None:
        raise RuntimeError("uv is needed to create LocalStack's environments: pip install uv (or make venv)")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_COMPILE_BYTECODE": "1",  # PYTHONDONTWRITEBYTECODE is set here: compile once at install
    }
    env.pop("VIRTUAL_ENV", None)
    argv = [uv, "sync", "--frozen", "--no-dev", "--project", str(project), "--python", str(python)]
    for package in reinstall:
        argv += ["--reinstall-package", package]
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    stamp.write_text(digest)


def ensure_venv(state_dir: Path) -> Path:
    """Create or update ``<state_dir>/localstack-venv`` (LocalStack + executor plugin) from the lock.

    Idempotent; returns at once when the lock, the plugin's sources and the interpreter are unchanged
    (the plugin is reinstalled whenever its sources change). RuntimeError if Python 3.13 or uv is missing.
    """
    python = find_localstack_python()
    if python is None:
        raise RuntimeError(explain_python_search(LOCALSTACK_PYTHON))
    state_dir = Path(state_dir).resolve()
    venv = state_dir / VENV_NAME
    inputs = [LOCALSTACK_PROJECT_DIR / "pyproject.toml", LOCALSTACK_PROJECT_DIR / "uv.lock", *_plugin_files()]
    with _locked(state_dir, VENV_NAME):
        _sync(LOCALSTACK_PROJECT_DIR, venv, python, _digest(inputs, str(python)), reinstall=(PLUGIN_DISTRIBUTION,))
    return venv


def ensure_lambda_runtime(state_dir: Path, runtime: str = "python3.12") -> Path:
    """Create or update ``<state_dir>/lambda-<runtime>``; returns its interpreter (for ``lambda_pythons``).

    RuntimeError if no interpreter of that Python version exists here.
    """
    if not runtime.startswith("python3."):
        raise ValueError(f"only python3.x runtimes run locally, not {runtime!r}")
    version = runtime.removeprefix("python")
    python = find_python(version)
    if python is None:
        raise RuntimeError(explain_python_search(version))
    state_dir = Path(state_dir).resolve()
    venv = state_dir / f"lambda-{runtime}"
    inputs = [RUNTIME_PROJECT_DIR / "pyproject.toml", RUNTIME_PROJECT_DIR / "uv.lock"]
    with _locked(state_dir, venv.name):
        _sync(RUNTIME_PROJECT_DIR, venv, python, _digest(inputs, str(python)))
    return venv / "bin" / "python"


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------
def health_url(port: int, host: str = "127.0.0.1") -> str:
    """LocalStack's health endpoint (200 with a JSON of services once the gateway is up)."""
    return f"http://{host}:{port}{HEALTH_PATH}"


# Variables of the caller's environment that would change LocalStack or its interpreter.
_DROPPED_PREFIXES = ("PYTHON", "VIRTUAL_ENV", "LOCALSTACK_", "LAMBDA_", "GATEWAY_", "UV_", "AWS_")
_DROPPED = {"SERVICES", "DEBUG", "LS_LOG", "PERSISTENCE", "DNS_ADDRESS", "TMPDIR"}


def state_dirs(state_dir: Path) -> dict[str, Path]:
    """LocalStack's directories under ``<state_dir>/localstack``: ``fs`` (FILESYSTEM_ROOT), ``tmp``, ``cache``."""
    state = Path(state_dir).resolve() / "localstack"
    return {name: state / name for name in ("fs", "tmp", "cache")}


def init_hook_dir(state_dir: Path, stage: str = "ready.d") -> Path:
    """Where LocalStack in host mode looks for its init scripts of ``stage`` (``<FILESYSTEM_ROOT>/etc/...``)."""
    return state_dirs(state_dir)["fs"] / "etc" / "localstack" / "init" / stage


def _localstack_settings(
    dirs: Mapping[str, Path], host: str, port: int, lambda_pythons: Mapping[str, Path | str], log_level: str
) -> dict[str, str]:
    """LocalStack's own variables (see :func:`localstack_command_and_env`): gateway, directories, executor."""
    return {
        "GATEWAY_LISTEN": f"{host}:{port}",
        "GATEWAY_SERVER": GATEWAY_SERVER_NAME,
        "LOCALSTACK_HOST": f"localhost:{port}",
        "DNS_ADDRESS": "0",
        "OVERRIDE_IN_DOCKER": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "PERSISTENCE": "0",
        "FILESYSTEM_ROOT": str(dirs["fs"]),
        "TMPDIR": str(dirs["tmp"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_NAME,
        PYTHONS_ENV: json.dumps({k: str(v) for k, v in lambda_pythons.items()}),
        "LS_LOG": log_level,
        "PYTHONUNBUFFERED": "1",
    }


def localstack_command_and_env(
    venv: Path,
    state_dir: Path,
    port: int,
    *,
    lambda_pythons: Mapping[str, Path | str] | None = None,
    lambda_ports: range | None = None,
    host: str = "127.0.0.1",
    log_level: str = "info",
    base_env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Command line and complete environment of LocalStack in host mode on ``host:port``.

    * files under ``<state_dir>/localstack``: ``fs`` (FILESYSTEM_ROOT: LocalStack's /var/lib/localstack,
      /etc/localstack ...), ``tmp`` (TMPDIR: unzipped function code, one directory per execution
      environment; LocalStack warns that TMPDIR is deprecated, it is still what ``tempfile`` uses), ``cache``
      (XDG_CACHE_HOME: plux's entry-point cache);
    * Lambda through the ``local-process`` executor; ``lambda_pythons`` maps runtimes to interpreters
      (default: ``{"python3.12": <state_dir>/lambda-python3.12/bin/python}``, see :func:`ensure_lambda_runtime`);
      ``lambda_ports`` bounds the loopback ports of the execution environments' servers (two per environment;
      default: any free port);
    * the gateway on ``host:port`` only: LocalStack's default server (twisted) ignores the host of
      ``GATEWAY_LISTEN`` and listens on all interfaces, so the plugin's ``twisted-bound`` server is selected
      (the same server, bound; LocalStack's ``hypercorn`` binds too but is ~10 ms slower per invocation);
    * ``LOCALSTACK_HOST=localhost:<port>``: the URLs LocalStack hands out (Function URLs
      ``http://<id>.lambda-url.<region>.localhost:<port>/``) then need no DNS in curl and browsers, which
      resolve ``*.localhost`` to loopback themselves (Python's resolver does not: send the request to
      ``host:port`` with that ``Host`` header instead);
    * no DNS server, no Docker detection, no analytics, no certificate download (no internet here);
    * no persistence: the community edition has none (``PERSISTENCE=1`` is a Pro feature), so its state is
      lost at every stop and deployments must be repeated after a start.

    ``base_env`` (default: ``os.environ``) is filtered of LocalStack and Python settings; ``extra_env`` is
    applied last (e.g. ``{"LS_LOG": "debug"}`` or ``{"SERVICES": "s3,iam,sts,lambda,apigateway,logs"}``).
    The Lambda functions do not inherit this environment: they get their own variables only.
    """
    dirs = state_dirs(state_dir)
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    if lambda_pythons is None:
        lambda_pythons = {"python3.12": Path(state_dir).resolve() / "lambda-python3.12" / "bin" / "python"}
    base = os.environ if base_env is None else base_env
    env = {k: v for k, v in base.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env.update(_localstack_settings(dirs, host, port, lambda_pythons, log_level))
    if lambda_ports is not None:
        if not lambda_ports or lambda_ports.step != 1:
            raise ValueError(f"lambda_ports must be a non-empty range of consecutive ports, got {lambda_ports!r}")
        env[PORTS_ENV] = f"{lambda_ports.start}-{lambda_ports.stop - 1}"
    env.update(extra_env or {})
    python = Path(venv) / "bin" / "python"
    return [str(python), "-m", "localstack.runtime.main"], env


if (
    __name__ == "__main__"
):  # python -m infra.aws_lambda.localstack_venvs STATE_DIR: create both environments, print them
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".stack")
    print(ensure_venv(target))
    print(ensure_lambda_runtime(target))
