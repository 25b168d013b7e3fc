"""The stack's credentials: each ``catalog.Credentials`` field from config (secret) or pulumi-random."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pulumi
import pulumi_random as random

from infra import catalog
from infra.components.common import TYPE_PREFIX

# Generated values are alphanumeric: they end up in URLs (Postgres), JSON (Airflow), an ini file (MLflow)
# and S3 signatures. Access key ids look like AWS's: 20 characters, upper case and digits.
ACCESS_KEY_LENGTH = 20
DEFAULT_LENGTH = 32
FERNET_FIELD = "airflow_fernet_key"


def fernet_key(password: str) -> str:
    """A Fernet key (url-safe base64 of 32 bytes) from a 32-character ASCII random password."""
    raw = password.encode()
    if len(raw) != 32:
        raise ValueError("a Fernet key needs exactly 32 random bytes")
    return base64.urlsafe_b64encode(raw).decode()


class PlatformSecrets(pulumi.ComponentResource):
    """Every credential of the platform as one secret ``Output[catalog.Credentials]``."""

    credentials: pulumi.Output[catalog.Credentials]
    generated: dict[str, random.RandomPassword]

    def __init__(
        self,
        name: str,
        configured: Mapping[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:PlatformSecrets", name, None, opts)
        self.generated = {}
        values: dict[str, pulumi.Output[str]] = {}
        for field in catalog.Credentials.names():
            if field in configured:
                values[field] = pulumi.Output.secret(configured[field])
                continue
            access_key = catalog.Credentials.is_access_key(field)  # every S3 identity's key id
            password = random.RandomPassword(
                field.replace("_", "-"),
                length=ACCESS_KEY_LENGTH if access_key else DEFAULT_LENGTH,
                special=False,
                lower=not access_key,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.generated[field] = password
            result = password.result
            values[field] = result.apply(fernet_key) if field == FERNET_FIELD else result
        self.credentials = pulumi.Output.secret(
            pulumi.Output.all(**values).apply(lambda v: catalog.Credentials(**v))  # type: ignore[arg-type]
        )
        self.register_outputs({})
