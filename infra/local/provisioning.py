"""Provisioning that follows a service's start, idempotent: databases and roles, buckets, MLflow users.

Run by ``up`` once each server answers (see :mod:`infra.local.service_hooks`); everything it creates comes
from the catalog, so a second run changes nothing.
"""

from __future__ import annotations

from infra import access, catalog
from infra.local import health


def ensure_databases(topo: catalog.Topology, creds: catalog.Credentials) -> list[str]:
    """Create the catalog's databases that do not exist yet (returns those), with their roles and settings.

    Each database is owned by its role, the only one allowed to connect (:func:`infra.access.postgres_roles_sql`).
    """
    from psycopg2 import sql

    conn = health.pg_connect(topo, creds, "postgres")
    conn.autocommit = True
    created = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            existing = {r[0] for r in cur.fetchall()}
            for db in catalog.DATABASES:
                if db not in existing:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(db), sql.Identifier(catalog.POSTGRES_USER)
                        )
                    )
                    created.append(db)
            for statement in access.postgres_roles_sql(access.role_passwords(creds)):  # holds passwords: not logged
                cur.execute(statement)
            for db in catalog.DATABASES:
                for statement in catalog.database_settings_sql(db):  # names and values from the catalog
                    cur.execute(statement)
    finally:
        conn.close()
    for db in catalog.DATABASES:  # objects a stack made before the roles existed change hands
        conn = health.pg_connect(topo, creds, db)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(access.adopt_objects_sql(db))
        finally:
            conn.close()
    return created


def ensure_buckets(topo: catalog.Topology, creds: catalog.Credentials) -> list[str]:
    """Create the catalog's buckets that do not exist yet; returns those created."""
    s3 = health.s3_client(topo, creds, timeout=10)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    created = []
    for bucket in catalog.BUCKETS:
        if bucket not in existing:
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                continue
            created.append(bucket)
    return created


def ensure_mlflow_users(topo: catalog.Topology, creds: catalog.Credentials) -> list[str]:
    """Create or update the catalog's MLflow users and their permissions; returns what changed."""
    from infra.mlflow_users import ensure_users

    return ensure_users(
        topo.url(catalog.MLFLOW),
        catalog.MLFLOW_ADMIN_USER,
        creds.mlflow_admin_password,
        {user: getattr(creds, field) for user, field in catalog.MLFLOW_USERS.items()},
    )
