"""Run the Pulumi program (``infra/__main__.py``) under Pulumi's mocks and record every registration.

No CLI, no Docker, no LocalStack: a :class:`pulumi.runtime.mocks.MockMonitor` subclass records each
``RegisterResource`` request (type, name, parent, provider, ``dependencies``) and its inputs as sent on
the wire, where secrets are still wrapped. The mocks return realistic outputs (digests, ARNs, ids) so
that every ``apply`` of the program runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.settings as pulumi_settings
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from infra import catalog
from ml.settings import MLSettings

REPO = Path(__file__).resolve().parents[3]
MAIN = REPO / "infra" / "__main__.py"
PROJECT = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["name"]
STACK = "dev"
REGION = "us-east-1"
CONFIGURED_S3_SECRET = "configured-s3-secret-Zq81xLw0"  # one credential set through (secret) config


def mock_password(name: str, length: int, upper_only: bool) -> str:
    """Deterministic stand-in for a RandomPassword result (recognisable, unique per resource)."""
    value = hashlib.sha256(f"mock-secret-{name}".encode()).hexdigest()
    value = (value * 4)[:length]
    return value.upper() if upper_only else value


def fernet_of(password: str) -> str:
    """What the program must derive from a 32-character random password for Airflow's Fernet key."""
    return base64.urlsafe_b64encode(password.encode()).decode()


class StackMocks(pulumi_mocks.Mocks):
    """Outputs a provider would return, so that ``apply`` chains (digests, ARNs, URLs) resolve."""

    def __init__(self, job_exit_codes: dict[str, int] | None = None) -> None:
        self.passwords: dict[str, str] = {}
        self.job_exit_codes = job_exit_codes or {}  # Docker name -> exit code of an attached job (default 0)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """Echo the inputs and add the computed outputs of each resource type the program uses."""
        outputs = dict(args.inputs)
        name, typ = args.name, args.typ
        rid = f"{name}-id"
        if typ == "random:index/randomPassword:RandomPassword":
            value = mock_password(name, int(args.inputs["length"]), upper_only=args.inputs.get("lower") is False)
            self.passwords[name] = value
            outputs["result"] = value
        elif typ == "docker:index/image:Image":
            outputs["repoDigest"] = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        elif typ == "docker:index/container:Container" and args.inputs.get("attach"):
            outputs["exitCode"] = self.job_exit_codes.get(args.inputs["name"], 0)
        elif typ == "aws:s3/bucket:Bucket":
            rid = args.inputs["bucket"]
            outputs["arn"] = f"arn:aws:s3:::{rid}"
        elif typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::000000000000:role/{args.inputs['name']}"
        elif typ == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{REGION}:000000000000:function:{args.inputs['name']}"
            outputs |= {
                "arn": arn,
                "invokeArn": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations",
            }
        elif typ == "aws:lambda/functionUrl:FunctionUrl":
            outputs["functionUrl"] = f"http://{name}.lambda-url.{REGION}.localhost.localstack.cloud:4566/"
        elif typ == "aws:apigateway/restApi:RestApi":
            rid = "abc123rest"
            outputs |= {
                "rootResourceId": "root0000",
                "executionArn": f"arn:aws:execute-api:{REGION}:000000000000:{rid}",
            }
        elif typ == "aws:apigatewayv2/api:Api":
            rid = "def456http"
            outputs |= {
                "apiEndpoint": f"https://{rid}.execute-api.{REGION}.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:{REGION}:000000000000:{rid}",
            }
        elif typ == "aws:apigateway/method:Method":
            outputs.setdefault("httpMethod", args.inputs.get("httpMethod"))
        return rid, outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The program makes no provider function calls."""
        raise AssertionError(f"unexpected provider call {args.token}")


@dataclass
class Registration:
    """One ``RegisterResource`` request as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    dependencies: list[str]
    wire_inputs: dict[str, Any]  # secrets still wrapped
    protect: bool
    retain_on_delete: bool

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped (for assertions on values)."""
        return unwrap(self.wire_inputs)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps every registration request (``depends_on`` is only visible here)."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        """Record the request, then let the mock monitor register it."""
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider,
                    custom=bool(request.custom),
                    dependencies=list(request.dependencies),
                    wire_inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                )
            )
        return response


def unwrap(value: Any) -> Any:
    """Recursively replace wrapped secrets by their values."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def clear_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a resource input that is not inside a secret (with its path)."""
    if rpc.is_rpc_secret(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from clear_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from clear_strings(item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value
    elif isinstance(value, pulumi.FileAsset):
        yield path, str(value.path)


def secret_strings(value: Any, inside: bool = False) -> Iterator[str]:
    """Every string inside a secret."""
    if rpc.is_rpc_secret(value):
        yield from secret_strings(rpc.unwrap_rpc_secret(value), True)
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_strings(item, inside)
    elif isinstance(value, list):
        for item in value:
            yield from secret_strings(item, inside)
    elif isinstance(value, str) and inside:
        yield value


@dataclass
class ProgramRun:
    """Everything one mocked run of the program produced."""

    registrations: list[Registration]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    passwords: dict[str, str]  # RandomPassword name -> mocked result
    config: dict[str, Any]
    secret_config: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)  # the program module's globals

    def credentials(self) -> catalog.Credentials:
        """The credentials the program must have used: secret config where set, else the mocked passwords."""
        values = {}
        for name in catalog.Credentials.names():
            camel = name.split("_")[0] + "".join(p.capitalize() for p in name.split("_")[1:])
            if camel in self.secret_config:
                values[name] = self.secret_config[camel]
            else:
                password = self.passwords[name.replace("_", "-")]
                values[name] = fernet_of(password) if name == "airflow_fernet_key" else password
        return catalog.Credentials(**values)

    def secret_values(self) -> set[str]:
        """Every secret value of the run: credentials, raw random results and configured secrets."""
        return {*self.credentials().values(), *self.passwords.values(), *self.secret_config.values()}

    def of_type(self, typ: str) -> list[Registration]:
        """All registrations of one resource type."""
        return [r for r in self.registrations if r.type == typ]

    def one(self, typ: str, name: str) -> Registration:
        """The registration of one named resource."""
        found = [r for r in self.registrations if r.type == typ and r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, got {[r.name for r in self.of_type(typ)]}"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        """The registration with this URN."""
        return next(r for r in self.registrations if r.urn == urn)

    @property
    def containers(self) -> dict[str, Registration]:
        """Docker containers by their Docker name."""
        return {r.inputs["name"]: r for r in self.of_type("docker:index/container:Container")}


# What the program must do without any config (defaults written out here, independently of the code).
DEFAULT_HOST_PORTS = {**catalog.DEFAULT_PORTS.as_dict(), "s3Console": 9001}
DEFAULT_IMAGES = {
    "postgres": "postgres:17.6",
    "minio": "minio/minio:RELEASE.2025-04-22T22-12-26Z",
    "localstack": "localstack/localstack:4.14.0",
}


def expected_settings(config: dict[str, Any] | None = None) -> MLSettings:
    """The ML settings a config asks for (ignoring any MLOPS_* variable of the shell running the tests)."""
    config = config or {}
    return MLSettings(
        _env_prefix="MLOPS_TESTS_IGNORED_",  # type: ignore[call-arg]
        dataset=config.get("dataset", MLSettings.model_fields["dataset"].default),
        datasets=config.get("datasets", MLSettings.model_fields["datasets"].default),
        n_trials=config.get("trialBudget", MLSettings.model_fields["n_trials"].default),
    )


def dev_config() -> dict[str, Any]:
    """The ``Pulumi.dev.yaml`` config without the project namespace and without encrypted (secure) values."""
    raw = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text())["config"]
    return {
        key.split(":", 1)[1]: value
        for key, value in raw.items()
        if key.startswith(f"{PROJECT}:") and not (isinstance(value, dict) and "secure" in value)
    }


def run_program(
    config: dict[str, Any], secrets: dict[str, str] | None = None, job_exit_codes: dict[str, int] | None = None
) -> ProgramRun:
    """Run ``infra/__main__.py`` under mocks with this config (plus ``secrets`` set as secret config).

    ``job_exit_codes`` sets the exit code the mocked provider reports for attached job containers.
    """
    secrets = secrets or {}
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in {**config, **secrets}.items()}
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secrets])
    mocks = StackMocks(job_exit_codes)
    monitor = RecordingMonitor(mocks)
    pulumi_settings.ROOT.set(None)  # a fresh root Stack, so exports of an earlier run do not leak in
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=monitor)

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        namespace.update(runpy.run_path(str(MAIN), run_name="__main__"))
        root = pulumi_settings.get_root_resource()
        exported: dict[str, Any] = dict(root.outputs)  # type: ignore[union-attr]

        async def collect() -> None:
            for key, value in exported.items():
                out = pulumi.Output.from_input(value)
                outputs[key] = await out.future()
                if await out.is_secret():
                    secret_outputs.add(key)

        return pulumi.Output.from_input(collect())

    program()
    return ProgramRun(monitor.registrations, outputs, secret_outputs, mocks.passwords, config, secrets, namespace)
