"""The Pulumi program's stack on a real engine, for the Docker tier's tests: up, train, probe, restart, destroy.

:class:`DockerStack` applies ``infra/__main__.py`` with ``Pulumi.dev.yaml`` through the replay
(:mod:`tests.docker.replay`), overriding only what isolation needs (name prefix, free host ports) and
turning on the training trigger the program offers. It records the figures the tier prints.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from dags.pipeline_ids import pipeline
from infra import catalog
from infra.aws_lambda import package_cache
from ml.settings import MLSettings
from ml.spec import get_spec
from tests.docker import replay
from tests.support.ports import free_ports
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PREFIX = "mlops-dtier"
HOST_PORT_KEYS = ("postgres", "s3", "s3Console", "mlflow", "airflow", "api", "localstack")


def _docker_time(stamp: str) -> float:
    """Epoch seconds of a Docker timestamp (RFC 3339 with nanoseconds)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}")


@dataclass
class DockerStack:
    """One deployment of the program on the engine, with helpers to reach its services from the host."""

    client: docker.DockerClient
    docker_cli: str
    log: Callable[[str], None] = print
    config: dict[str, Any] = field(default_factory=dict)
    deployment: replay.Deployment | None = None
    figures: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = dict(zip(HOST_PORT_KEYS, free_ports(len(HOST_PORT_KEYS)), strict=True))
        self.config = replay.stack_config("dev", {"namePrefix": PREFIX, "ports": ports, "triggerTraining": True})

    # ---------------------------------------------------------------------------------------------------
    # up / destroy
    # ---------------------------------------------------------------------------------------------------
    def up(self) -> replay.Deployment:
        """Build the Lambda zip if stale, then replay ``pulumi up``; a failure destroys what was created."""
        package_cache.ensure_zip()
        t0 = time.monotonic()
        deployment = replay.up(self.client, self.docker_cli, self.config, log=self.log)
        self.deployment = deployment
        if deployment.error is not None:
            with contextlib.suppress(Exception):
                deployment.destroy()
            self.deployment = None
            raise deployment.error
        self.figures["up_s"] = time.monotonic() - t0
        for image, seconds in deployment.monitor.docker.build_seconds.items():
            self.figures[f"build_{image.split('/')[-1].split(':')[0]}_s"] = seconds
        return deployment

    def destroy(self) -> float:
        """Replay ``pulumi destroy``; returns the seconds it took."""
        assert self.deployment is not None
        t0 = time.monotonic()
        try:
            self.deployment.destroy()
        finally:
            self.deployment = None
        self.figures["destroy_s"] = time.monotonic() - t0
        return self.figures["destroy_s"]

    def ensure_up(self) -> replay.Deployment:
        """The deployment, applying the program first if it is not (or no longer) deployed."""
        return self.deployment if self.deployment is not None else self.up()

    def build_in(self, context: str, key: str) -> str:
        """Build one of the project's images from a copy of the repository at ``context``; its image ID.

        The same BuildKit build the replay runs for the program's ``docker.Image`` (tagged apart).
        """
        from infra.components.services import BUILT_IMAGES

        built = BUILT_IMAGES[key]
        tag = f"{PREFIX}-context-check/{key}:latest-check"
        argv = [self.docker_cli, "build", "--quiet", "--file", f"{context}/infra/docker/{built.dockerfile}"]
        for name, value in sorted(built.build_args.items()):
            argv += ["--build-arg", f"{name}={value}"]
        done = subprocess.run(
            [*argv, "--tag", tag, context],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return str(self.client.images.get(tag).id)

    # ---------------------------------------------------------------------------------------------------
    # addressing
    # ---------------------------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, Any]:
        """The stack outputs (``pulumi stack output``)."""
        assert self.deployment is not None
        return self.deployment.outputs

    def port(self, key: str) -> int:
        """Published host port of a config port key (``mlflow``, ``api``...)."""
        return int(self.config["ports"][key])

    def url(self, key: str, path: str = "") -> str:
        """``http://127.0.0.1:<published port><path>``."""
        return f"http://127.0.0.1:{self.port(key)}{path}"

    def credentials(self) -> catalog.Credentials:
        """The generated credentials, read back from the stack outputs and the containers' environments.

        The admin jobs hold every service's database, S3 and MLflow login; the servers their root logins.
        """
        from infra.components import services
        from infra.mlflow_users import password_variable

        api, airflow = self.container_env(catalog.API), self.container_env(catalog.AIRFLOW_API)
        roles, s3_users = self.container_env("postgres-roles"), self.container_env("s3-users")
        minio, mlflow_users = self.container_env(catalog.S3), self.container_env("mlflow-users")
        values = {
            "postgres_password": roles["PGPASSWORD"],
            "s3_access_key": minio["MINIO_ROOT_USER"],
            "s3_secret_key": minio["MINIO_ROOT_PASSWORD"],
            "mlflow_admin_password": mlflow_users["MLFLOW_AUTH_ADMIN_PASSWORD"],
            "mlflow_flask_secret_key": self.container_env(catalog.MLFLOW)["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            "airflow_admin_password": self.outputs["airflowAdminPassword"],
            "airflow_jwt_secret": airflow["AIRFLOW__API_AUTH__JWT_SECRET"],
            "airflow_api_secret_key": airflow["AIRFLOW__API__SECRET_KEY"],
            "airflow_fernet_key": airflow["AIRFLOW__CORE__FERNET_KEY"],
            "api_admin_key": api["MLOPS_API_ADMIN_KEY"],
        }
        for role in set(catalog.DATABASE_ROLES.values()):
            values[f"postgres_{role}_password"] = roles[services.role_password_variable(role)]
        for identity in services.s3_user_identities():
            key, secret = services.s3_key_variables(identity)
            values[f"s3_{identity}_access_key"], values[f"s3_{identity}_secret_key"] = s3_users[key], s3_users[secret]
        for user, name in catalog.MLFLOW_USERS.items():
            values[name] = mlflow_users[password_variable(user)]
        return catalog.Credentials(**values)

    def mlflow_auth(self, user: str) -> tuple[str, str]:
        """The MLflow login (basic auth) of ``admin`` (the operator), ``pipeline`` or ``api``."""
        creds = self.credentials()
        if user == catalog.MLFLOW_ADMIN_USER:
            return user, creds.mlflow_admin_password
        return user, getattr(creds, catalog.MLFLOW_USERS[user])

    def host_topology(self) -> catalog.Topology:
        """The stack as seen from the host: every service on 127.0.0.1 at its published port."""
        ports = catalog.Ports(**{k: self.port(k) for k in catalog.Ports.__dataclass_fields__})
        return catalog.Topology.local(ports)

    # ---------------------------------------------------------------------------------------------------
    # containers
    # ---------------------------------------------------------------------------------------------------
    def name(self, service: str) -> str:
        """Docker name of a service's (or job's) container."""
        return f"{PREFIX}-{service}"

    def container(self, service: str) -> Any:
        """The docker SDK container of a service or job."""
        return self.client.containers.get(self.name(service))

    def container_env(self, service: str) -> dict[str, str]:
        """A container's environment as a dict."""
        env = self.container(service).attrs["Config"]["Env"] or []
        return dict(e.split("=", 1) for e in env)

    def stack_containers(self) -> list[Any]:
        """Every container of this stack: the program's and LocalStack's Lambda containers."""
        return [c for c in self.client.containers.list(all=True) if c.name.startswith(f"{PREFIX}-")]

    def health(self) -> dict[str, str]:
        """Health status of every service container."""
        result = {}
        for service in catalog.SERVICES:
            state = self.container(service).attrs["State"]
            result[service] = (state.get("Health") or {}).get("Status", state.get("Status", "?"))
        return result

    def wait_all_healthy(self, timeout_s: float = 300) -> float:
        """Seconds until Docker reports every service container healthy."""
        t0 = time.monotonic()
        wait_until(
            lambda: all(status == "healthy" for status in self.health().values()),
            timeout_s,
            interval=2.0,
            what=lambda: f"all containers healthy (now: {self.health()})",
            ignore=(Exception,),
        )
        return time.monotonic() - t0

    def memory_mb(self) -> float:
        """Memory in use by the stack's running containers (cgroup usage minus page cache), in MiB."""
        total = 0.0
        for c in self.stack_containers():
            if c.status != "running":
                continue
            stats = c.stats(stream=False)["memory_stats"]
            cache = (stats.get("stats") or {}).get("total_inactive_file", (stats.get("stats") or {}).get("cache", 0))
            total += (stats.get("usage", 0) - cache) / 2**20
        return total

    def s3(self, identity: str = "admin") -> Any:
        """A boto3 S3 client on the published S3 port with the keys of one S3 identity (``admin``: the root)."""
        import boto3
        from botocore.config import Config

        key, secret = catalog.s3_keys(self.credentials(), identity)
        return boto3.client(
            "s3",
            endpoint_url=self.url("s3"),
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=catalog.REGION,
            config=Config(
                connect_timeout=30, read_timeout=30, retries={"max_attempts": 2}, s3={"addressing_style": "path"}
            ),
        )

    def lake_objects(self) -> dict[str, str]:
        """Every object of the lake bucket with its ETag (through the published S3 port, as the root)."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=catalog.LAKE_BUCKET)
        return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    def pg_connect(self, user: str, password: str, database: str) -> Any:
        """A psycopg2 connection through the published Postgres port."""
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port("postgres"),
            user=user,
            password=password,
            dbname=database,
            connect_timeout=10,
        )

    def dag_runs(self) -> dict[str, str]:
        """``<dag>/<run id>`` -> state of every run of the project's DAGs (Airflow's REST API)."""
        from infra.local.airflow_client import AirflowClient

        creds = self.credentials()
        runs: dict[str, str] = {}
        with AirflowClient(self.url("airflow"), catalog.AIRFLOW_ADMIN_USER, creds.airflow_admin_password) as af:
            for dag in (dag_id for d in self.datasets() for dag_id in pipeline(d)):
                for run in af.list_dag_runs(dag):
                    runs[f"{dag}/{run['dag_run_id']}"] = run["state"]
        return runs

    # ---------------------------------------------------------------------------------------------------
    # training and serving
    # ---------------------------------------------------------------------------------------------------
    def wait_for_training(self, timeout_s: float = 1500) -> str:
        """Wait for the trigger job (ETL, then training) to exit 0; returns its log.

        Records ``training_s``: the job's run time, from its start (right after ``up``) to its exit.
        """
        job = self.container("trigger-training")
        try:
            status = job.wait(timeout=timeout_s)
        except Exception as e:  # requests' read timeout
            raise TimeoutError(f"training did not finish within {timeout_s:.0f} s") from e
        logs = job.logs().decode(errors="replace")
        if status["StatusCode"] != 0:
            raise AssertionError(f"trigger-training exited {status['StatusCode']}:\n{logs[-3000:]}")
        job.reload()
        started, finished = (_docker_time(job.attrs["State"][k]) for k in ("StartedAt", "FinishedAt"))
        self.figures["training_s"] = finished - started
        self.training_finished_at = finished
        return logs

    def datasets(self) -> list[str]:
        """The active datasets of the deployed config (each has its DAG pair and its model)."""
        return catalog.active_datasets(self.ml_settings())

    def ml_settings(self) -> MLSettings:
        """The ML settings the deployed config gives the containers (datasets, default dataset)."""
        defaults = {name: MLSettings.model_fields[name].default for name in ("dataset", "datasets")}
        return MLSettings(
            _env_prefix="MLOPS_DOCKER_TIER_IGNORED_",  # type: ignore[call-arg]
            dataset=self.config.get("dataset", defaults["dataset"]),
            datasets=self.config.get("datasets", defaults["datasets"]),
        )

    def sample_request(self) -> dict[str, Any]:
        """The default dataset's example record (what ``make up``'s legacy sample curl sends)."""
        return get_spec(self.ml_settings().dataset).example_record()

    def wait_for_champion(self, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until the API container serves a model; returns its ``GET /model``.

        The first time after training, records ``champion_served_after_training_s``.
        """

        def served() -> dict[str, Any] | None:
            r = httpx.get(self.url("api", "/ready"), timeout=10)
            return httpx.get(self.url("api", "/model"), timeout=10).json() if r.status_code == 200 else None

        model = wait_until(
            served, timeout_s, interval=0.5, what="the API container to serve the champion", ignore=(Exception,)
        )
        finished = getattr(self, "training_finished_at", None)
        if finished is not None and "champion_served_after_training_s" not in self.figures:
            self.figures["champion_served_after_training_s"] = max(0.0, time.time() - finished)
        return model

    def predict(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
        """POST the sample request to ``<base_url>/predict``; returns the JSON answer (fails unless 200)."""
        r = httpx.post(f"{base_url.rstrip('/')}/predict", json=self.sample_request(), headers=headers, timeout=timeout)
        assert r.status_code == 200, f"{base_url}: {r.status_code} {r.text[:500]}"
        return r.json()

    def function_url(self) -> tuple[str, dict[str, str]]:
        """Where to send Function URL requests from the host: the published gateway, with the URL's Host."""
        url = httpx.URL(self.outputs["lambdaFunctionUrl"])
        return self.url("localstack"), {"Host": f"{url.host}:{url.port}" if url.port else url.host}

    def rest_url(self) -> str:
        """The REST v1 stage URL (``.../restapis/<id>/prod/_user_request_``) on the published port."""
        return str(self.outputs["lambdaRestUrl"]).replace("localhost", "127.0.0.1", 1)

    @contextlib.contextmanager
    def host_api(self) -> Any:
        """The project's API as the embedded stack runs it (``uvicorn api.main:app`` from this checkout),
        pointed at this stack's MLflow and S3 through their published ports; yields its base URL."""
        (port,) = free_ports(1)
        env = {
            **os.environ,
            **catalog.api_env(self.host_topology(), self.credentials()),
            "PYTHONPATH": str(REPO),
        }
        argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(
                lambda: httpx.get(f"{base}/ready", timeout=5).status_code == 200,
                120,
                interval=1,
                what="the host API to serve",
                ignore=(Exception,),
            )
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
