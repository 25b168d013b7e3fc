"""The platform's credential set: every secret, one per role, generated on first start and never defaulted.

Part of the service catalog (``infra.catalog.Credentials`` is this class): the embedded stack keeps one set
in its state directory (``credentials.json``, mode 0600), the Pulumi program generates one random value per
field name.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Credentials:
    """Every secret of the platform. Generated on first start, never defaulted, never logged.

    One secret per role: Postgres (the superuser and one role per database), S3 (one key pair per identity,
    ``s3_access_key``/``s3_secret_key`` being the administrator's), MLflow (admin, pipeline, api), Airflow and
    the API's admin key.
    """

    postgres_password: str
    postgres_airflow_password: str
    postgres_mlflow_password: str
    postgres_optuna_password: str
    s3_access_key: str
    s3_secret_key: str
    s3_mlflow_access_key: str
    s3_mlflow_secret_key: str
    s3_pipeline_access_key: str
    s3_pipeline_secret_key: str
    s3_api_access_key: str
    s3_api_secret_key: str
    s3_lambda_access_key: str
    s3_lambda_secret_key: str
    mlflow_admin_password: str
    mlflow_pipeline_password: str
    mlflow_api_password: str
    mlflow_flask_secret_key: str
    airflow_admin_password: str
    airflow_jwt_secret: str
    airflow_api_secret_key: str
    airflow_fernet_key: str
    api_admin_key: str

    @staticmethod
    def is_access_key(name: str) -> bool:
        """Whether a field is an S3 access key id (upper-case alphanumeric, as S3 servers expect)."""
        return name.startswith("s3_") and name.endswith("access_key")

    @classmethod
    def generate_one(cls, name: str) -> str:
        """A fresh random value for one field."""
        if cls.is_access_key(name):
            return "AK" + secrets.token_hex(9).upper()
        if name == "airflow_fernet_key":
            return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        return secrets.token_urlsafe(30 if name.endswith("secret_key") else 24)

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh random credentials."""
        return cls(**{name: cls.generate_one(name) for name in cls.names()})

    @classmethod
    def names(cls) -> list[str]:
        """Names of all credential fields (Pulumi generates one random value per name)."""
        return [f.name for f in fields(cls)]

    def values(self) -> list[str]:
        """All secret values, e.g. to check that none leaks into a log or a resource input."""
        return [getattr(self, n) for n in self.names()]

    def __repr__(self) -> str:
        return f"Credentials({', '.join(f'{n}=***' for n in self.names())})"
