"""Who may do what: each service's rights on S3, Postgres and MLflow, defined once for both stacks.

The catalog (:mod:`infra.catalog`) gives every service its own credentials (one S3 key pair per identity,
one Postgres role per database, one MLflow user per client). This module says what each of them may do,
and renders it for the servers that enforce it:

* S3: :data:`S3_GRANTS`, rendered as SeaweedFS identities (the embedded stack) and as MinIO policies (the
  Pulumi program's ``mc admin`` job);
* Postgres: :func:`postgres_roles_sql`, run by the superuser: by the embedded stack, or by the Pulumi
  program's one-shot psql job on every ``pulumi up`` (Docker);
* MLflow: :data:`MLFLOW_PERMISSIONS` (its basic-auth app: ``default_permission = READ`` for every user who
  logged in; what a user creates is theirs to manage), applied by :mod:`infra.mlflow_users`.

:func:`access_table` is the security table of ``docs/security.md``, so the table cannot drift from what is enforced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from infra import catalog

READ, WRITE, LIST = "read", "write", "list"

#: What each S3 identity may do, by bucket. ``admin`` is the root (the operator's, for bucket creation).
S3_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "admin": {bucket: (READ, WRITE, LIST) for bucket in catalog.BUCKETS},
    "mlflow": {catalog.MLFLOW_BUCKET: (READ, WRITE, LIST)},  # MLflow's artifact proxy
    "pipeline": {catalog.LAKE_BUCKET: (READ, WRITE, LIST)},  # the ETL and training tasks (the data lake)
    # The API reads model files straight from S3 for s3:// artifact URIs and publishes the champion cache.
    "api": {catalog.MLFLOW_BUCKET: (READ, LIST), catalog.SERVING_BUCKET: (READ, WRITE, LIST)},
    "lambda": {catalog.MLFLOW_BUCKET: (READ, LIST), catalog.SERVING_BUCKET: (READ, LIST)},
}

#: Who uses each S3 identity.
S3_USERS: dict[str, str] = {
    "admin": "the operator; bucket creation at start-up",
    "mlflow": "the MLflow server (artifact proxy)",
    "pipeline": "Airflow's tasks (ETL, search, registry gate)",
    "api": "the prediction API (process or container)",
    "lambda": "the API as a Lambda",
}

#: MLflow: what each user may do (basic-auth permissions; the admin may do everything).
MLFLOW_PERMISSIONS: dict[str, str] = {
    catalog.MLFLOW_ADMIN_USER: "everything (users, permissions): the operator",
    "pipeline": "READ everything; MANAGE the experiments and registered models it creates (runs, versions, aliases)",
    "api": "READ only: cannot log runs, register versions or move an alias (MLflow lets any user create an "
    "experiment of its own)",
}

#: Postgres: the role of each database may connect to it and owns it; no other role may connect.
POSTGRES_USERS: dict[str, str] = {
    catalog.POSTGRES_USER: "superuser: the operator; creates the roles and databases",
    "airflow": "owns `airflow` (Airflow's metadata)",
    "mlflow": "owns `mlflow` (tracking and registry) and `mlflow_auth` (MLflow's users)",
    "optuna": "owns `optuna` (the studies of the searches)",
}

_SEAWEED_ACTIONS = {READ: "Read", WRITE: "Write", LIST: "List"}


def seaweed_identities_json(creds: catalog.Credentials) -> str:
    """SeaweedFS' S3 identity file: one identity per S3 identity, with its bucket-scoped actions (0600)."""
    identities = []
    for identity, grants in S3_GRANTS.items():
        key, secret = catalog.s3_keys(creds, identity)
        actions = ["Admin"] if identity == "admin" else []
        actions += [f"{_SEAWEED_ACTIONS[a]}:{bucket}" for bucket, acts in grants.items() for a in acts]
        if identity == "admin":
            actions += ["Read", "Write", "List", "Tagging"]
        identities.append(
            {
                "name": f"mlops-{identity}",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": actions,
            }
        )
    return json.dumps({"identities": identities}, indent=2)


_S3_POLICY_ACTIONS = {
    READ: ["s3:GetObject"],
    WRITE: ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
    LIST: ["s3:ListBucket", "s3:GetBucketLocation"],
}


def s3_policy(identity: str) -> dict[str, object]:
    """The IAM-style policy (MinIO, AWS) of one S3 identity: its grants and nothing else."""
    statements = []
    for bucket, actions in S3_GRANTS[identity].items():
        object_actions = [a for act in actions if act != LIST for a in _S3_POLICY_ACTIONS[act]]
        if LIST in actions:
            statements.append(
                {"Effect": "Allow", "Action": _S3_POLICY_ACTIONS[LIST], "Resource": [f"arn:aws:s3:::{bucket}"]}
            )
        if object_actions:
            statements.append({"Effect": "Allow", "Action": object_actions, "Resource": [f"arn:aws:s3:::{bucket}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def postgres_roles_sql(passwords: Mapping[str, str] | None = None) -> list[str]:
    r"""SQL (run by the superuser) that makes each database owned by its role, the only one that may connect.

    ``passwords``: role -> password. Idempotent; passwords are re-applied (``ALTER ROLE``). Values are
    quoted as SQL literals here, so the statements must never be logged. ``None``: each password is the psql
    variable ``:'<role>_password'`` instead, for a psql script that sets it from its environment
    (``\getenv``), so that neither the script nor a command line holds a password (the Pulumi program's job).
    """
    statements = []
    for role in sorted(set(catalog.DATABASE_ROLES.values())):
        literal = f":'{role}_password'" if passwords is None else "'" + passwords[role].replace("'", "''") + "'"
        statements += [
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN; END IF; END$$;",
            f"ALTER ROLE {role} WITH LOGIN PASSWORD {literal};",
        ]
    for database, role in catalog.DATABASE_ROLES.items():
        statements += [
            f"ALTER DATABASE {database} OWNER TO {role};",
            f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;",
            f"GRANT ALL ON DATABASE {database} TO {role};",
        ]
    return statements


def adopt_objects_sql(database: str) -> str:
    """SQL run in ``database`` by the superuser: its role takes over what the superuser created there.

    For stacks created before the per-database roles, whose tables, sequences, views and types belong to
    the superuser (a role cannot migrate tables it does not own). A no-op on a fresh stack.
    """
    role = catalog.DATABASE_ROLES[database]
    return f"""
DO $$DECLARE r record; BEGIN
  FOR r IN SELECT format('ALTER %s %I.%I OWNER TO {role}',
                         CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                        WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                         n.nspname, c.relname) AS stmt
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
             AND pg_get_userbyid(c.relowner) = '{catalog.POSTGRES_USER}'
             AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d
                                                  WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('ALTER TYPE %I.%I OWNER TO {role}', n.nspname, t.typname) AS stmt
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
             AND pg_get_userbyid(t.typowner) = '{catalog.POSTGRES_USER}'
  LOOP EXECUTE r.stmt; END LOOP;
END$$;"""


def role_passwords(creds: catalog.Credentials) -> dict[str, str]:
    """Password of each database role."""
    return {role: getattr(creds, f"postgres_{role}_password") for role in set(catalog.DATABASE_ROLES.values())}


def access_table() -> str:
    """The security table of docs/security.md (Markdown): every principal, where, and what it may do."""
    rows = ["| Principal | Where | May |", "| --- | --- | --- |"]
    for user, what in POSTGRES_USERS.items():
        rows.append(f"| `{user}` | Postgres | {what} |")
    for identity, grants in S3_GRANTS.items():
        rights = "; ".join(f"`{bucket}`: {', '.join(acts)}" for bucket, acts in grants.items())
        rows.append(f"| `{identity}` ({S3_USERS[identity]}) | S3 | {rights} |")
    for user, what in MLFLOW_PERMISSIONS.items():
        rows.append(f"| `{user}` | MLflow | {what} |")
    return "\n".join(rows)
