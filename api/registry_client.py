"""Find the served model in the MLflow registry and download its files, without the MLflow client.

The MLflow Python client (and its dependencies) would triple the Lambda package and its cold start, and
the service needs only three REST calls of the MLflow 3 server (checked against mlflow 3.17):

1. ``GET /api/2.0/mlflow/registered-models/alias?name=<model>&alias=<alias>`` answers
   ``{"model_version": {"name", "version", "source": "models:/m-...", "run_id", "tags": [...], ...}}``;
2. for a ``models:/<model_id>`` source, ``GET /api/2.0/mlflow/logged-models/<model_id>`` answers
   ``{"model": {"info": {"artifact_uri": "mlflow-artifacts:/1/models/m-.../artifacts", ...}}}``;
3. each file, by the scheme of that artifact URI:

   * ``mlflow-artifacts:/<path>``: through the server's artifact proxy,
     ``GET /api/2.0/mlflow-artifacts/artifacts/<path>/<file>`` (the server needs ``--serve-artifacts``);
   * ``s3://<bucket>/<prefix>``: straight from S3 with boto3 (``AWS_ENDPOINT_URL_S3`` and keys);
   * ``file://`` or a plain path: from the local file system (a server sharing this machine's disk).

Timeouts: the REST calls of an alias check (1 and 2) use ``check_timeout_s`` (short: a server that accepts
connections but does not answer, e.g. a stopped process, must not hold a check for long); file downloads
(3) use ``registry_timeout_s``. Both are socket timeouts, applied to the connect and to every read.

Errors fall into two classes that the service reports differently: :class:`RegistryUnavailableError` (MLflow
or S3 cannot be reached or fails: keep serving what we have) and :class:`ModelNotFoundError` (MLflow answers
that no version holds the alias).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.settings import ApiSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # boto3-stubs[s3] (dev dependency): types only

ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"
LOGGED_MODEL_PATH = "/api/2.0/mlflow/logged-models/"
RUN_PATH = "/api/2.0/mlflow/runs/get"
ARTIFACT_PROXY_PATH = "/api/2.0/mlflow-artifacts/artifacts/"
Params = Mapping[str, str | list[str]]  # a list: the parameter repeated (order_by)
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class RegistryError(RuntimeError):
    """Finding or downloading the model failed; the message says what and where."""


class RegistryUnavailableError(RegistryError):
    """MLflow or the artifact store could not be reached, timed out or failed (5xx)."""


class ModelNotFoundError(RegistryError):
    """The registry answered, but no model version holds the alias (or the model does not exist)."""


@dataclass(frozen=True)
class ModelRef:
    """One registered model version as the registry describes it: what to serve and where its files are."""

    name: str
    version: str
    alias: str
    source: str
    artifact_uri: str
    run_id: str | None = None
    model_id: str | None = None
    created_ms: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """The model URI a user would pass to MLflow: ``models:/<name>@<alias>``."""
        return f"models:/{self.name}@{self.alias}"

    def same_version(self, other: ModelRef | None) -> bool:
        """True if ``other`` is the same registered version with the same files."""
        return other is not None and (self.name, self.version, self.source) == (other.name, other.version, other.source)


class MlflowRegistry:
    """The model source of the service: ``models:/<name>@<alias>`` on an MLflow server, over REST."""

    def __init__(self, settings: ApiSettings) -> None:
        if not settings.tracking_uri or not settings.tracking_uri.startswith(("http://", "https://")):
            raise RegistryError(
                f"MLFLOW_TRACKING_URI must be the http(s) URL of an MLflow server, got {settings.tracking_uri!r}"
            )
        self.tracking_uri: str = settings.tracking_uri
        self.model_name = settings.model_name
        self.alias = settings.model_alias
        self.timeout = settings.registry_timeout_s
        self.check_timeout = settings.check_timeout_s
        self._settings = settings
        self._headers = {"Accept": "application/json", "User-Agent": "mlops-prediction-api"}
        if settings.tracking_token is not None:
            self._headers["Authorization"] = f"Bearer {settings.tracking_token.get_secret_value()}"
        elif settings.tracking_username and settings.tracking_password is not None:
            pair = f"{settings.tracking_username}:{settings.tracking_password.get_secret_value()}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self._s3: S3Client | None = None

    @property
    def description(self) -> str:
        """Where the model comes from, for /ready and log lines."""
        return f"models:/{self.model_name}@{self.alias} on {self.tracking_uri}"

    # ------------------------------------------------------------------------------------------- HTTP
    def _get(self, path: str, params: Params | None = None, timeout: float | None = None) -> bytes:
        url = self.tracking_uri + path + (f"?{urllib.parse.urlencode(params, doseq=True)}" if params else "")
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:2000]
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {}
            code = payload.get("error_code", "") if isinstance(payload, dict) else ""
            message = payload.get("message", body.decode(errors="replace")) if isinstance(payload, dict) else ""
            if exc.code < 500 and (code in _NOT_FOUND_CODES or exc.code == 404):
                raise ModelNotFoundError(f"MLflow answered {exc.code} {code} for {path}: {message}") from None
            if exc.code in (401, 403):
                raise RegistryUnavailableError(
                    f"MLflow refused the request ({exc.code}): set MLFLOW_TRACKING_TOKEN or "
                    "MLFLOW_TRACKING_USERNAME/PASSWORD"
                ) from None
            raise RegistryUnavailableError(f"MLflow answered {exc.code} {code} for {path}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                reason = f"no answer within {timeout or self.timeout:g} s ({reason})"
            raise RegistryUnavailableError(f"cannot reach MLflow at {self.tracking_uri}: {reason}") from None

    def get_json(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """GET a REST path of the MLflow server within ``check_timeout_s``; the JSON object it answers."""
        data = self._get(path, params, self.check_timeout)
        try:
            payload = json.loads(data)
        except ValueError:
            raise RegistryUnavailableError(f"MLflow answered {path} with something that is not JSON") from None
        if not isinstance(payload, dict):
            raise RegistryUnavailableError(f"MLflow answered {path} with a JSON {type(payload).__name__}")
        return payload

    # ------------------------------------------------------------------------------------------- registry
    def resolve(self) -> ModelRef:
        """The version that holds the alias now, with the URI of its files (two REST calls)."""
        try:
            version = self.get_json(ALIAS_PATH, {"name": self.model_name, "alias": self.alias})["model_version"]
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"no version of registered model {self.model_name!r} holds the alias {self.alias!r} ({exc})"
            ) from None
        except KeyError:
            raise RegistryUnavailableError("MLflow's alias answer has no 'model_version'") from None
        source = str(version.get("source", ""))
        tags = {t["key"]: t["value"] for t in version.get("tags", []) if "key" in t}
        model_id = version.get("model_id") or (source[len("models:/") :] if source.startswith("models:/") else None)
        return ModelRef(
            name=str(version.get("name", self.model_name)),
            version=str(version["version"]),
            alias=self.alias,
            source=source,
            artifact_uri=self._artifact_uri(source, model_id),
            run_id=version.get("run_id") or None,
            model_id=model_id,
            created_ms=version.get("creation_timestamp"),
            tags=tags,
        )

    def _artifact_uri(self, source: str, model_id: str | None) -> str:
        if source.startswith("models:/"):
            if not model_id or "/" in model_id:
                raise ModelNotFoundError(f"cannot serve source {source!r}: expected models:/<model_id> (MLflow 3)")
            info = self.get_json(LOGGED_MODEL_PATH + urllib.parse.quote(model_id))
            try:
                return str(info["model"]["info"]["artifact_uri"]).rstrip("/")
            except KeyError:
                raise RegistryUnavailableError(f"MLflow's logged model {model_id} has no artifact_uri") from None
        if source.startswith("runs:/"):
            run_id, _, path = source.removeprefix("runs:/").partition("/")
            run = self.get_json(RUN_PATH, {"run_id": run_id})
            return f"{str(run['run']['info']['artifact_uri']).rstrip('/')}/{path}".rstrip("/")
        return source.rstrip("/")

    # ------------------------------------------------------------------------------------------- artifacts
    def fetch(self, ref: ModelRef, filename: str) -> bytes:
        """Download one file of the model (``MLmodel``, ``model.skops``) from wherever its URI points."""
        uri = ref.artifact_uri
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme == "mlflow-artifacts":
            path = f"{parsed.path.lstrip('/')}/{filename}"
            try:
                return self._get(ARTIFACT_PROXY_PATH + urllib.parse.quote(path))
            except ModelNotFoundError as exc:
                raise RegistryUnavailableError(f"MLflow's artifact proxy has no {path}: {exc}") from None
        if parsed.scheme == "s3":
            return self._fetch_s3(parsed.netloc, f"{parsed.path.strip('/')}/{filename}")
        if parsed.scheme in ("", "file"):
            try:
                return (Path(urllib.parse.unquote(parsed.path)) / filename).read_bytes()
            except OSError as exc:
                raise RegistryUnavailableError(f"cannot read {uri}/{filename}: {exc}") from None
        if parsed.scheme in ("http", "https"):
            return self._get_absolute(f"{uri}/{filename}")
        raise RegistryError(f"cannot download artifacts from {uri!r}: unsupported scheme {parsed.scheme!r}")

    def _get_absolute(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryUnavailableError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None

    def _fetch_s3(self, bucket: str, key: str) -> bytes:
        if self._s3 is None:
            import boto3  # only when artifacts live on S3: keeps the proxied case free of botocore
            from botocore.config import Config

            config = Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            )
            self._s3 = boto3.client("s3", endpoint_url=self._settings.s3_endpoint_url, config=config)
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:  # botocore raises many types; all mean "cannot get the file now"
            raise RegistryUnavailableError(f"cannot download s3://{bucket}/{key}: {exc}") from None
