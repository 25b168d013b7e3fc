"""The access model (infra/access.py): what each credential may do, and how it is rendered for the servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import access, catalog

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CREDS = catalog.Credentials.generate()


def test_every_s3_identity_has_grants_and_users() -> None:
    assert set(access.S3_GRANTS) == set(catalog.S3_IDENTITIES) == set(access.S3_USERS)
    assert all(set(grants) <= set(catalog.BUCKETS) for grants in access.S3_GRANTS.values())
    # the services' least privilege, as docs/security.md states it
    assert access.S3_GRANTS["api"][catalog.MLFLOW_BUCKET] == (access.READ, access.LIST)
    assert access.WRITE not in access.S3_GRANTS["lambda"].get(catalog.SERVING_BUCKET, ())
    assert catalog.LAKE_BUCKET not in access.S3_GRANTS["api"]
    assert catalog.SERVING_BUCKET not in access.S3_GRANTS["pipeline"]


def test_seaweed_identities_carry_each_identitys_keys_and_bucket_scoped_actions() -> None:
    doc = json.loads(access.seaweed_identities_json(CREDS))
    by_key = {i["credentials"][0]["accessKey"]: i for i in doc["identities"]}
    for identity in catalog.S3_IDENTITIES:
        key, secret = catalog.s3_keys(CREDS, identity)
        entry = by_key[key]
        assert entry["credentials"][0]["secretKey"] == secret
        if identity != "admin":
            assert all(":" in action for action in entry["actions"]), entry  # bucket-scoped only
    assert "Admin" in by_key[CREDS.s3_access_key]["actions"]
    lambda_actions = by_key[CREDS.s3_lambda_access_key]["actions"]
    assert lambda_actions == ["Read:mlflow", "List:mlflow", "Read:serving", "List:serving"]


def test_s3_policies_grant_nothing_beyond_the_model() -> None:
    policy = access.s3_policy("lambda")
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{b}{s}" for b in ("mlflow", "serving") for s in ("", "/*")}


def test_role_sql_quotes_passwords_and_locks_each_database_to_its_role() -> None:
    sql = access.postgres_roles_sql({"airflow": "it's", "mlflow": "m", "optuna": "o"})
    assert "ALTER ROLE airflow WITH LOGIN PASSWORD 'it''s';" in sql
    for database, role in catalog.DATABASE_ROLES.items():
        assert f"ALTER DATABASE {database} OWNER TO {role};" in sql
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;" in sql


def test_each_service_env_uses_its_own_logins() -> None:
    topo = catalog.Topology.local()
    api = catalog.api_env(topo, CREDS)
    assert api["AWS_ACCESS_KEY_ID"] == CREDS.s3_api_access_key and api["MLFLOW_TRACKING_USERNAME"] == "api"
    ml = catalog.ml_env(topo, CREDS)
    assert ml["AWS_ACCESS_KEY_ID"] == CREDS.s3_pipeline_access_key and ml["MLFLOW_TRACKING_USERNAME"] == "pipeline"
    assert "optuna:" in ml["MLOPS_OPTUNA_STORAGE"] and CREDS.postgres_password not in ml["MLOPS_OPTUNA_STORAGE"]
    server = catalog.mlflow_server_env(topo, CREDS, auth_config_path="/x.ini")
    assert server["AWS_ACCESS_KEY_ID"] == CREDS.s3_mlflow_access_key
    assert server["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:")
    every = " ".join(v for env in (api, ml, server) for v in env.values())
    assert CREDS.postgres_password not in every and CREDS.s3_secret_key not in every


def test_the_documented_security_table_is_the_access_model() -> None:
    """The table of docs/security.md is generated from infra/access.py: it cannot drift from what is enforced."""
    assert access.access_table() in (REPO / "docs" / "security.md").read_text()
