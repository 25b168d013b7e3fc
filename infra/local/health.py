"""Health checks of the catalog's kinds (``sql``, ``s3``, ``http``, ``airflow-component``) against a local stack.

Each check makes one bounded attempt and returns a :class:`Health`; the stack polls them with deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from infra import catalog


@dataclass(frozen=True)
class Health:
    """Result of one check: healthy or not, and a one-line detail (never a secret)."""

    ok: bool
    detail: str


def _err(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------------------
def pg_connect(topo: catalog.Topology, creds: catalog.Credentials, database: str, timeout: float = 3.0) -> Any:
    """A psycopg2 connection to one database as ``catalog.POSTGRES_USER`` over TCP with the password."""
    import psycopg2

    return psycopg2.connect(
        host=topo.host(catalog.POSTGRES),
        port=topo.port(catalog.POSTGRES),
        user=catalog.POSTGRES_USER,
        password=creds.postgres_password,
        dbname=database,
        connect_timeout=max(1, int(timeout)),
    )


def s3_client(topo: catalog.Topology, creds: catalog.Credentials, timeout: float = 3.0) -> Any:
    """A boto3 S3 client for the stack's S3 endpoint with the stack's keys."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=catalog.s3_endpoint(topo),
        aws_access_key_id=creds.s3_access_key,
        aws_secret_access_key=creds.s3_secret_key,
        region_name=catalog.REGION,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------
def check_sql(
    topo: catalog.Topology, creds: catalog.Credentials, databases: tuple[str, ...] = catalog.DATABASES
) -> Health:
    """``SELECT 1`` on each database (``("postgres",)`` during start-up, before ours exist)."""
    for db in databases:
        try:
            conn = pg_connect(topo, creds, db)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            finally:
                conn.close()
        except Exception as e:
            return Health(False, f"database {db}: {_err(e)}")
    return Health(True, f"SELECT 1 ok on {', '.join(databases)}")


def check_s3(topo: catalog.Topology, creds: catalog.Credentials, buckets: tuple[str, ...] = catalog.BUCKETS) -> Health:
    """ListBuckets with the stack's keys, and the expected buckets exist."""
    try:
        names = {b["Name"] for b in s3_client(topo, creds).list_buckets().get("Buckets", [])}
    except Exception as e:
        return Health(False, _err(e))
    missing = [b for b in buckets if b not in names]
    if missing:
        return Health(False, f"ListBuckets ok but bucket(s) missing: {', '.join(missing)}")
    return Health(True, f"ListBuckets ok ({', '.join(sorted(names))})")


def http_get(url: str, timeout: float = 3.0) -> tuple[Health, httpx.Response | None]:
    """One GET: the :func:`check_http` verdict, and the response when it answered 2xx (else None)."""
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        return Health(False, _err(e)), None
    if 200 <= r.status_code < 300:
        return Health(True, f"GET {url} -> {r.status_code}"), r
    return Health(False, f"GET {url} -> {r.status_code} {r.text[:200]!r}"), None


def check_http(url: str, timeout: float = 3.0) -> Health:
    """GET answers 2xx."""
    return http_get(url, timeout)[0]


def airflow_health(topo: catalog.Topology, timeout: float = 3.0) -> dict[str, Any]:
    """Airflow's ``/api/v2/monitor/health`` document (no authentication needed)."""
    r = httpx.get(topo.url(catalog.AIRFLOW_API, catalog.AIRFLOW_HEALTH_PATH), timeout=timeout)
    r.raise_for_status()
    return r.json()


def _parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def check_airflow_component(
    topo: catalog.Topology, component: str, started_at: float | None = None, doc: dict[str, Any] | None = None
) -> Health:
    """Airflow reports ``component`` healthy, with a heartbeat newer than ``started_at``.

    ``started_at`` is the process' start, so that the heartbeat of a previous, killed instance does not count.
    """
    try:
        doc = doc if doc is not None else airflow_health(topo)
    except (httpx.HTTPError, ValueError) as e:
        return Health(False, f"Airflow API: {_err(e)}")
    entry = doc.get(component) or {}
    status = entry.get("status")
    beat_key = next((k for k in entry if k.startswith("latest_") and k.endswith("heartbeat")), None)
    beat = _parse_ts(entry.get(beat_key)) if beat_key else None
    if status != "healthy":
        return Health(False, f"{component} status {status!r} (last heartbeat {entry.get(beat_key)})")
    if started_at is not None and beat is not None and beat + 1.0 < started_at:
        return Health(False, f"{component}: last heartbeat predates the running process (stale)")
    return Health(True, f"{component} healthy (heartbeat {entry.get(beat_key)})")


def check(
    service: str,
    topo: catalog.Topology,
    creds: catalog.Credentials,
    started_at: float | None = None,
    airflow_doc: dict[str, Any] | None = None,
) -> Health:
    """The catalog's health check of ``service``.

    LocalStack's goes further than its catalog entry (``GET /_localstack/health``): the deployed function must
    answer a request through its Function URL too (see :mod:`infra.aws_lambda.local_service`).
    """
    if service == catalog.LOCALSTACK:
        from infra.aws_lambda import local_service

        return local_service.check(topo)
    hc = catalog.SERVICES[service].health
    if hc.kind == "sql":
        return check_sql(topo, creds)
    if hc.kind == "s3":
        return check_s3(topo, creds)
    if hc.kind == "http":
        return check_http(topo.url(service, hc.path), timeout=hc.timeout_s)
    if hc.kind == "airflow-component":
        return check_airflow_component(topo, hc.component, started_at, airflow_doc)
    raise ValueError(f"unknown health check kind {hc.kind!r}")
