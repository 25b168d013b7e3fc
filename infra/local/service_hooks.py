"""Per-service knowledge of the embedded stack: how each service is checked, what runs once it is ready.

Beyond its program, what a failure means. Each :class:`~infra.local.programs.LocalService` carries its
:class:`ServiceHooks` (:func:`hooks_for`); the start-up sequence (:mod:`infra.local.startup`) and ``status``
call the hooks and have no per-service branches of their own.

Defaults (:data:`DEFAULT_HOOKS`): readiness and health are the catalog's health check, nothing runs once ready.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import catalog
from infra.local import health, provisioning
from infra.local.health import Health


@dataclass
class HookContext:
    """What a hook may use: the stack's topology and credentials, its output, and ``up``'s Lambda job (if any)."""

    name: str
    topology: catalog.Topology
    creds: catalog.Credentials
    out: Callable[[str], None] = lambda _msg: None
    lambda_job: Any = None  # infra.aws_lambda.local_deployment.LambdaDeployment while `up` runs
    log_path: Path | None = None


def catalog_check(ctx: HookContext) -> Health:
    """The service's catalog health check."""
    return health.check(ctx.name, ctx.topology, ctx.creds)


def catalog_status(ctx: HookContext) -> tuple[Health, dict[str, Any]]:
    """``status``'s verdict: the catalog health check, nothing extra to report."""
    return catalog_check(ctx), {}


@dataclass(frozen=True)
class ServiceHooks:
    """Per-service start-up and status knowledge.

    * ``ready``: during ``up``, when the server counts as answering (before ``on_ready`` runs);
    * ``on_ready``: what ``up`` does once it answers (create databases, buckets, users; deploy the Lambda);
    * ``started``: during ``up``, the health the service must reach after ``on_ready``;
    * ``failure``: during ``up``, a reason to stop waiting at once (None while there is none);
    * ``fatal_details``: a substring of a failed check's detail -> what it means (``up`` fails at once);
    * ``status``: ``make status``'s verdict and any extra facts to report.
    """

    ready: Callable[[HookContext], Health] = catalog_check
    on_ready: Callable[[HookContext], None] | None = None
    started: Callable[[HookContext], Health] = catalog_check
    failure: Callable[[HookContext], str | None] = lambda _ctx: None
    fatal_details: Mapping[str, str] = field(default_factory=dict)
    status: Callable[[HookContext], tuple[Health, dict[str, Any]]] = catalog_status


DEFAULT_HOOKS = ServiceHooks()


# ------------------------------------------------------------------------------------------------- Postgres
def _postgres_ready(ctx: HookContext) -> Health:
    return health.check_sql(ctx.topology, ctx.creds, ("postgres",))  # our databases are created right after


def _postgres_on_ready(ctx: HookContext) -> None:
    provisioning.ensure_databases(ctx.topology, ctx.creds)


POSTGRES_HOOKS = ServiceHooks(
    ready=_postgres_ready,
    on_ready=_postgres_on_ready,
    fatal_details={"password authentication failed": "rejects the password in credentials.json"},
)


# ------------------------------------------------------------------------------------------------- S3
def _s3_ready(ctx: HookContext) -> Health:
    return health.check_s3(ctx.topology, ctx.creds, ())  # the buckets are created right after


def _s3_on_ready(ctx: HookContext) -> None:
    provisioning.ensure_buckets(ctx.topology, ctx.creds)


S3_HOOKS = ServiceHooks(ready=_s3_ready, on_ready=_s3_on_ready)


# ------------------------------------------------------------------------------------------------- MLflow
def _mlflow_on_ready(ctx: HookContext) -> None:
    changed = provisioning.ensure_mlflow_users(ctx.topology, ctx.creds)
    if changed:
        ctx.out(f"  mlflow users: {', '.join(changed)}")


MLFLOW_HOOKS = ServiceHooks(on_ready=_mlflow_on_ready)


# ------------------------------------------------------------------------------------------------- LocalStack
def _localstack_ready(ctx: HookContext) -> Health:
    from infra.aws_lambda.local_service import localstack_health

    return localstack_health(ctx.topology)  # LocalStack starts empty: the Lambda is deployed right after


def _localstack_on_ready(ctx: HookContext) -> None:
    if ctx.lambda_job is not None:
        ctx.lambda_job.localstack_ready()  # the job deploys the Lambda now


def _localstack_started(ctx: HookContext) -> Health:
    if ctx.lambda_job is not None:
        return ctx.lambda_job.health()  # deployed and answering its first request
    return catalog_check(ctx)


def _localstack_failure(ctx: HookContext) -> str | None:
    if ctx.lambda_job is not None and ctx.lambda_job.failed:
        return "is up, but the API could not be deployed as a Lambda"
    return None


def _localstack_status(ctx: HookContext) -> tuple[Health, dict[str, Any]]:
    from infra.aws_lambda import local_service

    result, eps = local_service.status(ctx.topology, log_path=ctx.log_path)
    return result, ({"lambda": local_service.describe_endpoints(eps)} if eps is not None else {})


LOCALSTACK_HOOKS = ServiceHooks(
    ready=_localstack_ready,
    on_ready=_localstack_on_ready,
    started=_localstack_started,
    failure=_localstack_failure,
    status=_localstack_status,
)


_BY_SERVICE = {
    catalog.POSTGRES: POSTGRES_HOOKS,
    catalog.S3: S3_HOOKS,
    catalog.MLFLOW: MLFLOW_HOOKS,
    catalog.LOCALSTACK: LOCALSTACK_HOOKS,
}


def hooks_for(service: str) -> ServiceHooks:
    """The hooks of a catalog service (:data:`DEFAULT_HOOKS` for those without special knowledge)."""
    return _BY_SERVICE.get(service, DEFAULT_HOOKS)
