"""The Pulumi program, run under mocks: what it registers, how it is wired, what it exposes and exports."""

from __future__ import annotations

import base64
import gc
import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra import catalog
from infra.components.config import check_pinned, localstack_needs_token
from ml.spec import available_datasets
from tests.unit.infra.pulumi_harness import (
    DEFAULT_HOST_PORTS,
    DEFAULT_IMAGES,
    REPO,
    ProgramRun,
    Registration,
    clear_strings,
    run_program,
    secret_strings,
)

pytestmark = pytest.mark.unit

PREFIX = "mlops-dev"
CONTAINER = "docker:index/container:Container"
JOBS = {"postgres-roles", "s3-buckets", "s3-users", "mlflow-users", "airflow-migrate"}
AIRFLOW_SERVICES = [
    catalog.AIRFLOW_API,
    catalog.AIRFLOW_SCHEDULER,
    catalog.AIRFLOW_DAG_PROCESSOR,
    catalog.AIRFLOW_TRIGGERER,
]
# Everything the dev stack must register, by type (guards against a vacuous pass of the other tests).
EXPECTED_DEV_RESOURCES = {
    CONTAINER: len(catalog.SERVICES) + len(JOBS),
    "docker:index/image:Image": 3,
    "docker:index/volume:Volume": 3,
    "docker:index/network:Network": 1,
    "random:index/randomPassword:RandomPassword": len(catalog.Credentials.names()) - 1,  # one set in config
    "pulumi:providers:aws": 1,
    "aws:s3/bucket:Bucket": 1,
    "aws:s3/bucketObjectv2:BucketObjectv2": 1,
    "aws:iam/role:Role": 1,
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:lambda/function:Function": 1,
    "aws:lambda/functionUrl:FunctionUrl": 1,
    "aws:lambda/permission:Permission": 2,
    "aws:apigateway/restApi:RestApi": 1,
    "aws:apigateway/resource:Resource": 1,
    "aws:apigateway/method:Method": 2,
    "aws:apigateway/integration:Integration": 2,
    "aws:apigateway/deployment:Deployment": 1,
    "aws:apigateway/stage:Stage": 1,
    **{f"mlops:infra:{component}": 1 for component in ("Platform", "PlatformSecrets", "LambdaApi")},
    # One generic component per catalog service.
    "mlops:infra:Service": len(catalog.SERVICES),
}
# The service component that must own each container (its own, and the jobs that belong to it).
OWNER = {
    **{service: service for service in catalog.SERVICES},
    "postgres-roles": catalog.POSTGRES,
    "s3-buckets": catalog.S3,
    "s3-users": catalog.S3,
    "mlflow-users": catalog.MLFLOW,
    "airflow-migrate": catalog.AIRFLOW_API,
}
WAITED_ON = {catalog.POSTGRES, catalog.S3, catalog.MLFLOW, catalog.AIRFLOW_API, catalog.LOCALSTACK}


def service_of(container: Registration) -> str:
    """Catalog service (or job) name of a container, from its Docker name."""
    return container.inputs["name"].removeprefix(f"{PREFIX}-")


def dependency_names(run: ProgramRun, reg: Registration) -> set[str]:
    """Docker names of the containers (and resource names of the rest) that ``reg`` depends on."""
    names = set()
    for urn in reg.dependencies:
        dep = run.by_urn(urn)
        names.add(service_of(dep) if dep.type == CONTAINER else dep.name)
    return names


# ---------------------------------------------------------------------------------------------------------
# Inventory and structure
# ---------------------------------------------------------------------------------------------------------
def test_registers_exactly_the_expected_resources(dev_run: ProgramRun) -> None:
    assert Counter(r.type for r in dev_run.registrations) == Counter(EXPECTED_DEV_RESOURCES)
    assert {service_of(c) for c in dev_run.containers.values()} == set(catalog.SERVICES) | JOBS


def test_every_resource_is_parented_to_its_component(dev_run: ProgramRun) -> None:
    by_urn = {r.urn: r for r in dev_run.registrations}
    for reg in dev_run.registrations:
        if reg.type == "mlops:infra:Platform":
            assert reg.parent.endswith("pulumi:pulumi:Stack::mlops-platform-dev")
            continue
        assert reg.parent in by_urn, f"{reg.type} {reg.name} has no component parent"
        assert by_urn[reg.parent].type.startswith("mlops:infra:")
    for container in dev_run.containers.values():
        owner = by_urn[container.parent]
        assert (owner.type, owner.name) == ("mlops:infra:Service", OWNER[service_of(container)]), container.name


def test_program_is_thin() -> None:
    source = (REPO / "infra" / "__main__.py").read_text()
    statements = [line for line in source.splitlines() if line and not line.startswith(("#", " ", '"'))]
    assert "MlopsPlatform(" in source and "pulumi.export" in source
    assert not re.search(r"\b(docker|aws|random)\.[A-Z]", source), "resources belong in infra/components"
    assert len(statements) <= 10, statements


# ---------------------------------------------------------------------------------------------------------
# Network, healthchecks, ports
# ---------------------------------------------------------------------------------------------------------
def test_every_container_is_on_the_stack_network_and_has_a_healthcheck(dev_run: ProgramRun) -> None:
    (network,) = dev_run.of_type("docker:index/network:Network")
    assert network.inputs["name"] == f"{PREFIX}-net"
    assert len(dev_run.containers) == EXPECTED_DEV_RESOURCES[CONTAINER]
    for name, container in dev_run.containers.items():
        inputs = container.inputs
        (attachment,) = inputs["networksAdvanced"]
        assert attachment["name"] == network.inputs["name"], name
        assert network.urn in container.dependencies, name
        if service_of(container) in catalog.SERVICES:
            assert attachment["aliases"] == [service_of(container)], name
        check = inputs.get("healthcheck") or {}
        assert check.get("tests") and check["tests"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        assert check["interval"] and check["timeout"] and check["retries"] > 0, name


def test_host_ports_bind_to_loopback_by_default(dev_run: ProgramRun) -> None:
    published: dict[str, list[dict[str, Any]]] = {}
    for container in dev_run.containers.values():
        for port in container.inputs.get("ports", []):
            assert port["ip"] == "127.0.0.1", (container.name, port)
            published.setdefault(service_of(container), []).append(port)
    with_ports = {name for name, svc in catalog.SERVICES.items() if svc.port is not None}
    assert set(published) == with_ports  # jobs and the Airflow workers publish nothing
    assert published[catalog.S3] == [
        {"internal": 9000, "external": DEFAULT_HOST_PORTS["s3"], "ip": "127.0.0.1"},
        {"internal": 9001, "external": DEFAULT_HOST_PORTS["s3Console"], "ip": "127.0.0.1"},
    ]
    for service, ports in published.items():
        assert ports[0]["external"] == DEFAULT_HOST_PORTS[catalog.SERVICES[service].port or ""], service


def test_bind_address_and_host_ports_come_from_config(options_run: ProgramRun) -> None:
    mlflow = options_run.containers[f"{PREFIX}-mlflow"]
    assert mlflow.inputs["ports"] == [{"internal": 5001, "external": 15001, "ip": "127.0.0.2"}]
    for container in options_run.containers.values():
        assert all(p["ip"] == "127.0.0.2" for p in container.inputs.get("ports", []))
    assert options_run.outputs["mlflowUrl"] == "http://127.0.0.2:15001"
    # MLflow must accept the Host header of the published port.
    env = dict(e.split("=", 1) for e in mlflow.inputs["envs"])
    assert "localhost:15001" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")


def test_services_others_depend_on_are_waited_for(dev_run: ProgramRun) -> None:
    for container in dev_run.containers.values():
        service = service_of(container)
        if service in WAITED_ON:
            assert container.inputs["wait"] is True, service
            assert container.inputs["waitTimeout"] > catalog.SERVICES[service].health.start_period_s
        elif service in JOBS:
            # One-shot jobs: Pulumi waits for them to exit; they are kept (logs) and never restarted.
            assert container.inputs["attach"] is True and container.inputs["mustRun"] is False, service
            assert container.inputs["restart"] == "no"


# ---------------------------------------------------------------------------------------------------------
# Images and volumes
# ---------------------------------------------------------------------------------------------------------
def test_images_are_built_from_the_repository_and_containers_use_the_digest(dev_run: ProgramRun) -> None:
    images = {r.name: r for r in dev_run.of_type("docker:index/image:Image")}
    assert set(images) == {"mlflow", "airflow", "api"}
    for name, image in images.items():
        build = image.inputs["build"]
        assert Path(build["context"]) == REPO
        assert Path(build["dockerfile"]) == REPO / "infra" / "docker" / f"{name}.Dockerfile"
        assert Path(build["dockerfile"]).is_file()
        assert image.inputs["skipPush"] is True
    mocked = {name: "sha256:" + hashlib.sha256(name.encode()).hexdigest() for name in images}  # see StackMocks
    uses = {catalog.MLFLOW: "mlflow", "mlflow-users": "mlflow", catalog.API: "api", "airflow-migrate": "airflow"}
    uses |= dict.fromkeys(AIRFLOW_SERVICES, "airflow")
    for service, image_name in uses.items():
        container = dev_run.containers[f"{PREFIX}-{service}"]
        assert container.inputs["image"] == mocked[image_name], service
        assert any(dev_run.by_urn(u).name == image_name for u in container.dependencies), service


def test_upstream_images_are_pinned(dev_run: ProgramRun) -> None:
    upstream = {
        catalog.POSTGRES: "postgres",
        "postgres-roles": "postgres",
        catalog.S3: "minio",
        "s3-buckets": "minio",
        "s3-users": "minio",
        "localstack": "localstack",
    }
    configured = DEFAULT_IMAGES
    for service, key in upstream.items():
        image = dev_run.containers[f"{PREFIX}-{service}"].inputs["image"]
        assert image == configured[key]
        check_pinned(key, image)
        assert not image.endswith(":latest")
    assert configured["minio"].startswith("minio/minio:RELEASE.")
    assert not localstack_needs_token(configured["localstack"])  # no auth token configured in dev


def test_named_volumes_are_mounted_and_pulumi_managed(dev_run: ProgramRun) -> None:
    volumes = {r.inputs["name"]: r for r in dev_run.of_type("docker:index/volume:Volume")}
    assert set(volumes) == {f"{PREFIX}-pgdata", f"{PREFIX}-s3data", f"{PREFIX}-airflow-logs"}
    for volume in volumes.values():
        # docs/pulumi-docker.md: deleted by `pulumi destroy` together with the generated passwords.
        assert not volume.retain_on_delete and not volume.protect
    mounts = {
        service_of(c): {(v.get("volumeName"), v["containerPath"]) for v in c.inputs.get("volumes", [])}
        for c in dev_run.containers.values()
    }
    assert (f"{PREFIX}-pgdata", "/var/lib/postgresql/data") in mounts[catalog.POSTGRES]
    assert (f"{PREFIX}-s3data", "/data") in mounts[catalog.S3]
    for service in AIRFLOW_SERVICES:
        assert (f"{PREFIX}-airflow-logs", "/opt/airflow/logs") in mounts[service]


def test_airflow_reads_the_repositorys_data_dir_read_only(dev_run: ProgramRun) -> None:
    """Users' data files (relative CSV paths of specs) come from the repository's data/, never written."""
    for service in AIRFLOW_SERVICES:
        container = dev_run.containers[f"{PREFIX}-{service}"]
        data = [v for v in container.inputs["volumes"] if v["containerPath"] == "/opt/mlops/data"]
        assert data == [{"hostPath": str(REPO / "data"), "containerPath": "/opt/mlops/data", "readOnly": True}]
        assert "MLOPS_DATA_DIR=/opt/mlops/data" in container.inputs["envs"]


def test_airflow_reads_the_repositorys_specs_read_only(dev_run: ProgramRun) -> None:
    """A spec added on the host reaches the DAG processor without an image rebuild (bind mount over the copy)."""
    specs = "/opt/mlops/src/ml/datasets"
    assert f"COPY ml {specs.removesuffix('/ml/datasets')}/ml" in (REPO / "infra/docker/airflow.Dockerfile").read_text()
    for service in AIRFLOW_SERVICES:
        container = dev_run.containers[f"{PREFIX}-{service}"]
        mounted = [v for v in container.inputs["volumes"] if v["containerPath"] == specs]
        assert mounted == [{"hostPath": str(REPO / "ml" / "datasets"), "containerPath": specs, "readOnly": True}]


# ---------------------------------------------------------------------------------------------------------
# Dependencies (only visible in the RegisterResource requests)
# ---------------------------------------------------------------------------------------------------------
def test_dependencies_order_the_stack(dev_run: ProgramRun) -> None:
    def deps(service: str) -> set[str]:
        return dependency_names(dev_run, dev_run.containers[f"{PREFIX}-{service}"])

    def all_deps(service: str) -> set[str]:  # transitively
        seen, todo = set(), [dev_run.containers[f"{PREFIX}-{service}"]]
        while todo:
            for urn in todo.pop().dependencies:
                dep = dev_run.by_urn(urn)
                if dep.type == CONTAINER and service_of(dep) not in seen:
                    seen.add(service_of(dep))
                    todo.append(dep)
        return seen

    # The roles, buckets and users exist before anyone logs in with them.
    assert {catalog.POSTGRES, "postgres-roles", catalog.S3, "s3-buckets", "s3-users"} <= deps(catalog.MLFLOW)
    assert deps("postgres-roles") >= {catalog.POSTGRES}
    assert catalog.S3 in deps("s3-buckets")
    assert {catalog.S3, "s3-buckets"} <= deps("s3-users")  # policies name the buckets: after them
    assert catalog.MLFLOW in deps("mlflow-users")
    for service in [*AIRFLOW_SERVICES, "airflow-migrate"]:
        assert {catalog.MLFLOW, "mlflow-users"} <= deps(service), service
        assert {"postgres-roles", "s3-users"} <= all_deps(service), service
    assert {catalog.POSTGRES, "airflow-migrate"} <= deps(catalog.AIRFLOW_API)
    assert {catalog.POSTGRES, "postgres-roles"} <= deps("airflow-migrate")
    for service in AIRFLOW_SERVICES[1:]:
        assert catalog.AIRFLOW_API in deps(service), service
    assert {catalog.MLFLOW, "mlflow-users", catalog.S3, "s3-users"} <= deps(catalog.API)
    assert catalog.S3 in deps(catalog.LOCALSTACK)
    # Whatever else, each service depends on what the catalog says.
    for service, svc in catalog.SERVICES.items():
        assert set(svc.depends_on) <= deps(service), service


def test_localstack_comes_before_every_aws_resource(dev_run: ProgramRun) -> None:
    aws = [r for r in dev_run.registrations if r.type.startswith(("aws:", "pulumi:providers:aws"))]
    assert len(aws) == sum(n for t, n in EXPECTED_DEV_RESOURCES.items() if t.startswith(("aws:", "pulumi:prov")))
    for reg in aws:
        assert catalog.LOCALSTACK in dependency_names(dev_run, reg), f"{reg.type} {reg.name}"
    function = dev_run.one("aws:lambda/function:Function", "lambda-function")
    assert {catalog.MLFLOW, "lambda-package", "lambda-write-logs", "lambda-read-models"} <= dependency_names(
        dev_run, function
    )


def test_dependency_graph_is_acyclic_and_ordered(dev_run: ProgramRun) -> None:
    graph = {r.urn: set(r.dependencies) for r in dev_run.registrations}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(urn: str) -> None:
        if urn in order:
            return
        assert urn not in visiting, f"cycle through {urn}"
        visiting.add(urn)
        for dep in graph.get(urn, ()):
            visit(dep)
        order.append(urn)

    for urn in graph:
        visit(urn)
    position = {urn: i for i, urn in enumerate(order)}
    c = {service_of(r): position[r.urn] for r in dev_run.containers.values()}
    assert c[catalog.POSTGRES] < c[catalog.MLFLOW] and c[catalog.S3] < c[catalog.MLFLOW]
    assert all(c[catalog.MLFLOW] < c[s] for s in [*AIRFLOW_SERVICES, catalog.API])
    function = dev_run.one("aws:lambda/function:Function", "lambda-function")
    assert c[catalog.LOCALSTACK] < position[function.urn]


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run_name", ["dev_run", "options_run"])
def test_no_secret_appears_in_clear_in_any_input(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    secrets = run.secret_values()
    assert len(secrets) >= len(catalog.Credentials.names())
    for reg in run.registrations:
        for path, text in clear_strings(reg.wire_inputs):
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{reg.type} {reg.name} input {path} holds a secret in clear"
    # Not vacuous: every credential is used, wrapped, somewhere.
    wrapped = [text for reg in run.registrations for text in secret_strings(reg.wire_inputs)]
    for name, value in zip(catalog.Credentials.names(), run.credentials().values(), strict=True):
        assert any(value in text for text in wrapped), f"credential {name} is not used by any resource"


def test_credentials_come_from_config_or_pulumi_random(dev_run: ProgramRun) -> None:
    generated = {r.name for r in dev_run.of_type("random:index/randomPassword:RandomPassword")}
    assert generated == {n.replace("_", "-") for n in catalog.Credentials.names()} - {"s3-secret-key"}
    minio = dev_run.containers[f"{PREFIX}-s3"]
    assert f"MINIO_ROOT_PASSWORD={dev_run.credentials().s3_secret_key}" in minio.inputs["envs"]
    # The Fernet key must be valid for Airflow: url-safe base64 of 32 bytes.
    assert len(base64.urlsafe_b64decode(dev_run.credentials().airflow_fernet_key)) == 32


def test_credential_outputs_are_secret_and_others_hold_no_secret(dev_run: ProgramRun) -> None:
    creds = dev_run.credentials()
    expected = {
        "airflowAdminPassword": creds.airflow_admin_password,
        "mlflowAdminPassword": creds.mlflow_admin_password,
        "postgresPassword": creds.postgres_password,
        "s3AccessKey": creds.s3_access_key,
        "s3SecretKey": creds.s3_secret_key,
        "apiAdminKey": creds.api_admin_key,
    }
    assert dev_run.secret_outputs == set(expected)
    for name, value in expected.items():
        assert dev_run.outputs[name] == value
    secrets = dev_run.secret_values()
    for name, value in dev_run.outputs.items():
        if name not in expected:
            assert not any(s in str(value) for s in secrets), name


# ---------------------------------------------------------------------------------------------------------
# Stack outputs documented in docs/pulumi-docker.md
# ---------------------------------------------------------------------------------------------------------
def documented_outputs() -> dict[str, tuple[bool, str]]:
    """Output name -> (secret, when) from the "Stack outputs" table of docs/pulumi-docker.md."""
    text = (REPO / "docs" / "pulumi-docker.md").read_text()
    section = text.split("\n## Stack outputs\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z0-9]+)` \| (yes|no) \| (\w+) \|", section, flags=re.MULTILINE)
    return {name: (secret == "yes", when) for name, secret, when in rows}


def test_documented_outputs_exist_and_every_output_is_documented(dev_run: ProgramRun, options_run: ProgramRun) -> None:
    documented = documented_outputs()
    assert len(documented) >= 20
    assert {when for _, when in documented.values()} == {"always", "deployLambda", "httpApi"}
    for name, (secret, when) in documented.items():
        run = options_run if when == "httpApi" else dev_run
        assert name in run.outputs, f"documented output {name} is not exported"
        assert (name in run.secret_outputs) == secret, name
    assert set(dev_run.outputs) | set(options_run.outputs) == set(documented)
    assert "lambdaHttpApiUrl" not in dev_run.outputs


def test_output_values(dev_run: ProgramRun) -> None:
    out, ports = dev_run.outputs, DEFAULT_HOST_PORTS
    assert out["airflowUrl"] == f"http://localhost:{ports['airflow']}"
    assert out["mlflowUrl"] == f"http://localhost:{ports['mlflow']}"
    assert out["apiUrl"] == f"http://localhost:{ports['api']}"
    assert out["localstackUrl"] == f"http://localhost:{ports['localstack']}"
    assert out["lambdaRestUrl"] == f"http://localhost:{ports['localstack']}/restapis/abc123rest/prod/_user_request_"
    assert out["lambdaFunctionUrl"].startswith("http://") and ".lambda-url." in out["lambdaFunctionUrl"]
    assert out["networkName"] == f"{PREFIX}-net"
    assert set(out["images"]) == {"mlflow", "airflow", "api"}


# ---------------------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------------------
def test_training_trigger_option(dev_run: ProgramRun, options_run: ProgramRun) -> None:
    assert f"{PREFIX}-trigger-training" not in dev_run.containers
    job = options_run.containers[f"{PREFIX}-trigger-training"]
    assert job.inputs["entrypoints"] == ["python", "/opt/mlops/bin/trigger_training.py"]
    datasets = available_datasets()  # the dev config activates every spec
    assert job.inputs["command"] == [f"etl_{d}:training_{d}" for d in datasets]
    assert job.inputs["attach"] is False and job.inputs["mustRun"] is False
    assert set(AIRFLOW_SERVICES) <= dependency_names(options_run, job)
    env = dict(e.split("=", 1) for e in job.inputs["envs"])
    assert env["MLOPS_AIRFLOW_URL"] == "http://airflow-apiserver:8080"
    assert env["MLOPS_AIRFLOW_PASSWORD"] == options_run.credentials().airflow_admin_password


def test_without_the_lambda_no_aws_resource_is_created(lambda_zip: Path) -> None:
    run = run_program({"localstack": {"deployLambda": False}, "lambdaZip": "/nonexistent.zip"})
    assert not [r for r in run.registrations if r.type.startswith(("aws:", "pulumi:providers:aws"))]
    assert f"{PREFIX}-localstack" in run.containers
    assert not [name for name in run.outputs if name.startswith("lambda")]


def test_missing_lambda_zip_fails_with_instructions(tmp_path: Path) -> None:
    missing = tmp_path / "api-lambda.zip"
    with pytest.raises(pulumi.RunError, match=r"make lambda-zip"):
        run_program({"lambdaZip": str(missing)})


# ---------------------------------------------------------------------------------------------------------
# Faults the provider does not report by itself
# ---------------------------------------------------------------------------------------------------------
JOB_DEPENDANTS = [
    ("airflow-migrate", catalog.AIRFLOW_API),
    ("s3-buckets", catalog.MLFLOW),
    ("postgres-roles", catalog.MLFLOW),
    ("s3-users", catalog.API),
    ("mlflow-users", catalog.API),
]


@pytest.mark.parametrize(("job", "dependant"), JOB_DEPENDANTS)
def test_a_failed_job_stops_the_deployment_before_its_dependants(
    job: str, dependant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bridged provider waits for an attached job to exit but never checks its exit code."""
    from tests.unit.infra.pulumi_harness import StackMocks

    created: set[str] = set()
    original = StackMocks.new_resource

    def recording(self: StackMocks, args: Any) -> Any:
        if args.typ == CONTAINER:
            created.add(args.inputs["name"])
        return original(self, args)

    monkeypatch.setattr(StackMocks, "new_resource", recording)
    # Every dependant awaits the failed check; asyncio reports each of those futures when they are collected.
    monkeypatch.setattr(logging.getLogger("asyncio"), "disabled", True)
    with pytest.raises(Exception, match=rf"job {PREFIX}-{job} exited with code 3: see `docker logs {PREFIX}-{job}`"):
        run_program({}, job_exit_codes={f"{PREFIX}-{job}": 3})
    gc.collect()
    # Nothing that waits for the job got created: the failure is reported where it happened.
    assert f"{PREFIX}-{job}" in created and f"{PREFIX}-{dependant}" not in created, sorted(created)


def test_containers_stop_gracefully_on_destroy(dev_run: ProgramRun) -> None:
    """``pulumi destroy`` stops a container with ``destroy_grace_seconds`` (provider default 0: SIGKILL at once),
    so without it LocalStack cannot remove its Lambda containers and Postgres cannot shut down cleanly."""
    for container in dev_run.containers.values():
        service = service_of(container)
        if service in catalog.SERVICES:
            grace = catalog.SERVICES[service].stop_grace_s
            assert container.inputs["destroyGraceSeconds"] == grace >= 10, service
            assert container.inputs["stopTimeout"] == grace, service
    assert catalog.SERVICES[catalog.LOCALSTACK].stop_grace_s >= 20


def test_localstack_knows_its_own_container(dev_run: ProgramRun) -> None:
    """LocalStack looks its container up by MAIN_CONTAINER_NAME (default ``localstack-main``) to give each
    Lambda container its address on the stack network; the program's container has another name."""
    container = dev_run.containers[f"{PREFIX}-{catalog.LOCALSTACK}"]
    env = dict(e.split("=", 1) for e in container.inputs["envs"])
    assert env["MAIN_CONTAINER_NAME"] == container.inputs["name"]
