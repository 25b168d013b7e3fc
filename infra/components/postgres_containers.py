"""Postgres on Docker: the official image, its volume, the init script and the roles job.

The init script creates the catalog's databases; the one-shot ``psql`` job gives each database to its own
role (:func:`infra.access.postgres_roles_sql`).

Part of :mod:`infra.components.services` (which re-exports these names); the passwords reach the job
through its environment only, never its command or the uploaded script.
"""

from __future__ import annotations

import functools

from infra import access, catalog
from infra.components import health
from infra.components.common import StackValues
from infra.components.service import Job

POSTGRES_DATA_DIR = "/var/lib/postgresql/data"  # PGDATA of the postgres 17 image (18 moved it: adjust when upgrading)
POSTGRES_INIT_SCRIPT = "/docker-entrypoint-initdb.d/10-create-databases.sql"


def postgres_init_sql() -> str:
    """SQL run once, on an empty volume: one database per catalog database, with its settings (no secret)."""
    lines = []
    for db in catalog.DATABASES:
        lines += [f"CREATE DATABASE {db} OWNER {catalog.POSTGRES_USER};", *catalog.database_settings_sql(db)]
    return "".join(f"{line}\n" for line in lines)


def postgres_command() -> list[str]:
    """The image's server with the catalog's server settings (``postgres -c key=value ...``)."""
    return ["postgres", *(arg for k, v in catalog.POSTGRES_SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}"))]


def postgres_env(values: StackValues) -> dict[str, str]:
    """Environment of the official postgres image (password applied at first initialisation only)."""
    return {"POSTGRES_USER": catalog.POSTGRES_USER, "POSTGRES_PASSWORD": values.creds.postgres_password}


POSTGRES_ROLES_SCRIPT = "/tmp/mlops-postgres/roles.sql"  # uploaded into the roles job (no secret in it)


def role_password_variable(role: str) -> str:
    """Environment variable of the roles job holding a database role's password."""
    return f"MLOPS_POSTGRES_{role.upper()}_PASSWORD"


def postgres_roles_script() -> str:
    r"""The psql script of the ``postgres-roles`` job, run as the superuser on every ``pulumi up``.

    Creates the catalog's databases a volume made by an older program lacks, gives each database to its role
    (the only one that may connect; :func:`infra.access.postgres_roles_sql`), (re)applies the database
    settings and hands the role what the superuser created in its database before the roles existed
    (:func:`infra.access.adopt_objects_sql`). Idempotent. The passwords are psql variables read from the
    job's environment (``\getenv``): neither this script nor the command line holds one, and the session
    keeps failed statements out of the server log.
    """
    roles = sorted(set(catalog.DATABASE_ROLES.values()))
    lines = [
        "\\set ON_ERROR_STOP on",
        "SET log_statement = 'none';",
        "SET log_min_error_statement = 'panic';",
    ]
    for role in roles:
        variable = role_password_variable(role)
        lines += [
            f"\\getenv {role}_password {variable}",
            f"\\if :{{?{role}_password}}",
            "\\else",
            f"DO $$BEGIN RAISE EXCEPTION 'the job has no {variable}'; END$$;",
            "\\endif",
        ]
    for db in catalog.DATABASES:
        lines.append(
            f"SELECT 'CREATE DATABASE {db} OWNER {catalog.POSTGRES_USER}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}') \\gexec"
        )
    lines += access.postgres_roles_sql()  # passwords as psql variables
    for db in catalog.DATABASES:
        lines += catalog.database_settings_sql(db)
    for db in catalog.DATABASES:
        lines += [f"\\connect {db}", access.adopt_objects_sql(db).strip()]
    lines.append(f"\\echo 'databases {', '.join(catalog.DATABASES)}: each owned by its role'")
    return "".join(f"{line}\n" for line in lines)


def postgres_roles_env(topo: catalog.Topology, values: StackValues) -> dict[str, str]:
    """Environment of the ``postgres-roles`` job: libpq's superuser login and each role's password."""
    creds = values.creds
    return {
        "PGHOST": topo.host(catalog.POSTGRES),
        "PGPORT": str(topo.port(catalog.POSTGRES)),
        "PGUSER": catalog.POSTGRES_USER,
        "PGPASSWORD": creds.postgres_password,
        "PGDATABASE": "postgres",
        "PGAPPNAME": "mlops-postgres-roles",
        **{role_password_variable(role): pw for role, pw in access.role_passwords(creds).items()},
    }


def postgres_roles_job(topo: catalog.Topology) -> Job:
    """The one-shot job (postgres image, ``psql`` as the superuser) that applies the database roles."""
    pg_health = catalog.SERVICES[catalog.POSTGRES].health
    probe = ["CMD", "pg_isready", "-h", topo.host(catalog.POSTGRES), "-p", str(topo.port(catalog.POSTGRES))]
    return Job(
        "postgres-roles",
        command=["--no-psqlrc", "--no-password", "--file", POSTGRES_ROLES_SCRIPT],
        entrypoint=["psql"],
        env=functools.partial(postgres_roles_env, topo),
        check=health.for_job([*probe, "-U", catalog.POSTGRES_USER, "-d", "postgres"], pg_health),
        uploads={POSTGRES_ROLES_SCRIPT: postgres_roles_script()},
    )
