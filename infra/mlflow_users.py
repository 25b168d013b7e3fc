"""MLflow's users and grants (its basic-auth app), from the catalog: run by the operator's admin, idempotent.

* ``pipeline`` (the training pipeline) gets MANAGE on every experiment, logged model and registered model
  (wildcard grants, so experiments and models created before the users existed are covered too): it logs
  runs, registers versions and moves the ``champion``/``challenger`` aliases;
* ``api`` (the API and the Lambda) keeps the server's ``default_permission``, READ: it cannot log, register
  or move an alias.

Passwords are (re)applied on every call, so rotated credentials take effect. The embedded stack calls
:func:`ensure_users` once MLflow answers; the Docker stack runs this file as a one-shot job in the MLflow
image (credentials from the environment, see :func:`main`). It needs MLflow and the standard library only
(the MLflow image has nothing else of the project); the user names are the catalog's (``MLFLOW_USERS``,
checked by a test).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

#: What the pipeline may do beyond reading (resource type -> permission; every resource: "*").
PIPELINE_GRANTS = {"experiment": "MANAGE", "logged_model": "MANAGE", "registered_model": "MANAGE"}
GRANTS: dict[str, dict[str, str]] = {"pipeline": PIPELINE_GRANTS, "api": {}}


def _client(tracking_uri: str, admin_user: str, admin_password: str) -> Any:
    """MLflow's ``AuthServiceClient`` logged in as the admin (not through the process environment)."""
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.utils.credentials import MlflowHostCreds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    creds = MlflowHostCreds(host=tracking_uri, username=admin_user, password=admin_password)

    class AdminClient(AuthServiceClient):
        def _request(self, endpoint: str, method: str, *, expected_status: int = 200, **kwargs: Any) -> Any:
            resp = verify_rest_response(http_request(creds, endpoint, method, **kwargs), endpoint, expected_status)
            return resp.json() if resp.status_code != 204 and resp.content else {}

    return AdminClient(tracking_uri)


def _exists(error: Exception) -> bool:
    return "RESOURCE_ALREADY_EXISTS" in str(error) or "already exists" in str(error)


def ensure_users(tracking_uri: str, admin_user: str, admin_password: str, passwords: Mapping[str, str]) -> list[str]:
    """Create (or update the password of) each service user and apply its grants; returns what changed."""
    from mlflow.exceptions import MlflowException, RestException

    client = _client(tracking_uri, admin_user, admin_password)
    changed = []
    for user in GRANTS:
        try:
            client.get_user(user)
            client.update_user_password(user, passwords[user])
        except (MlflowException, RestException) as error:
            if "RESOURCE_DOES_NOT_EXIST" not in str(error) and "not found" not in str(error).lower():
                raise
            client.create_user(user, passwords[user])
            changed.append(f"user {user}")
        for resource_type, permission in GRANTS[user].items():
            try:
                client.grant_user_permission(user, resource_type, "*", permission)
                changed.append(f"{user}: {permission} on every {resource_type}")
            except (MlflowException, RestException) as error:
                if not _exists(error):
                    raise
    return changed


def password_variable(user: str) -> str:
    """Environment variable of a service user's password for :func:`main`."""
    return f"MLOPS_MLFLOW_{user.upper()}_PASSWORD"


def main() -> int:
    """One-shot job: ``MLFLOW_TRACKING_URI``, ``MLFLOW_AUTH_ADMIN_USERNAME``/``_PASSWORD``, and each user's password."""
    uri = os.environ["MLFLOW_TRACKING_URI"]
    admin_user, admin = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    passwords = {user: os.environ[password_variable(user)] for user in GRANTS}
    deadline = time.monotonic() + 300
    while True:
        try:
            changed = ensure_users(uri, admin_user, admin, passwords)
            break
        except Exception as error:  # MLflow still starting: retry for a while
            if time.monotonic() > deadline:
                print(f"error: could not set up MLflow's users at {uri}: {error}", file=sys.stderr)
                return 1
            time.sleep(3)
    print(f"MLflow users: {', '.join(changed) or 'up to date'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
