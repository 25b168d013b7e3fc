"""Settings of the prediction service, read from the environment in one place.

The names are the platform's (see ``infra/catalog.py:api_env``): ``MLFLOW_TRACKING_URI``,
``MLOPS_MODEL_NAME``, ``MLOPS_API_ADMIN_KEY`` and the standard S3 variables, plus tuning knobs with the
``MLOPS_API_`` prefix. Nothing else in :mod:`api` reads ``os.environ``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SETUP_HINT = "run `make up`, or trigger the dataset's etl_<dataset> DAG (its training_<dataset> DAG follows)"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# AWS Lambda refuses synchronous invocations whose request payload exceeds 6 MB (6,291,456 bytes): behind a
# Function URL or API Gateway no larger body reaches the function, so the function refuses the same ones.
LAMBDA_MAX_BODY_BYTES = 6 * 1024 * 1024


class ApiSettings(BaseSettings):
    """Everything the prediction service can be told from the environment."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_API_", extra="ignore", populate_by_name=True, frozen=True)

    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLOPS_API_TRACKING_URI"),
        description="http(s) URL of the MLflow server whose registry holds the model.",
    )
    tracking_token: SecretStr | None = Field(
        default=None, validation_alias="MLFLOW_TRACKING_TOKEN", description="Bearer token for MLflow, if any."
    )
    tracking_username: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_USERNAME",
        description="MLflow basic-auth user (the stacks give the API a read-only one).",
    )
    tracking_password: SecretStr | None = Field(
        default=None, validation_alias="MLFLOW_TRACKING_PASSWORD", description="Password of that MLflow user."
    )
    model_name: str = Field(
        default="breast_cancer_classifier",
        validation_alias=AliasChoices("MLOPS_MODEL_NAME", "MLOPS_API_MODEL_NAME"),
        description="Registered model of the default model (MLOPS_API_DEFAULT_MODEL); other models are discovered.",
    )
    model_alias: str = Field(default="champion", description="Registry alias to serve (MLOPS_API_MODEL_ALIAS).")
    default_model: str = Field(
        default="breast_cancer",
        pattern=r"^[a-z][a-z0-9_]*$",
        description=(
            "Dataset (spec) name of the default model: the one POST /predict, /predict/batch, GET /model and "
            "POST /model/reload serve, and /ready waits for. Its registered model is MLOPS_MODEL_NAME."
        ),
    )
    models: str | None = Field(
        default=None,
        description=(
            "Comma-separated dataset names to serve (e.g. 'breast_cancer,wine'); unset: every registered model "
            "tagged mlops.dataset, plus the default model."
        ),
    )
    admin_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_API_ADMIN_KEY"),
        description="Key for POST /model/reload and /models/{name}/reload; they are disabled when unset.",
    )
    poll_interval_s: float = Field(
        default=30.0, ge=0, description="Seconds between checks of the alias for a new version; 0 turns polling off."
    )
    retry_interval_s: float = Field(
        default=5.0, ge=0, description="Minimum seconds between load attempts while no model is loaded."
    )
    registry_timeout_s: float = Field(
        default=10.0, gt=0, description="Connect and read timeout of each model file download (MLflow or S3)."
    )
    check_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Connect and read timeout of each alias check request to MLflow and of each champion cache read on S3: "
            "how long a check may wait on a server that accepts connections but does not answer."
        ),
    )
    cache_dir: Path | None = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "mlops-api-cache",
        description=(
            "Local champion cache (see api.champion_cache): the last champion's files, to start serving without "
            "MLflow. Default: <TMPDIR>/mlops-api-cache (a Lambda environment's /tmp); empty or 'off' disables it."
        ),
    )
    cache_s3_uri: str | None = Field(
        default=None,
        description="s3://bucket/prefix of the shared champion cache (read at start and when MLflow is unreachable).",
    )
    cache_publish: bool = Field(
        default=True,
        description="Write the champion cache to cache_s3_uri after loading a champion from MLflow (s3:PutObject).",
    )
    max_batch: int = Field(default=1000, ge=1, description="Most records accepted by POST /predict/batch.")
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description=(
            "Largest request body of POST /predict/batch; POST /predict accepts at most 64 KiB of it. Default 10 MiB, "
            "6 MiB in AWS Lambda (its payload limit; see for_lambda)."
        ),
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
        description="S3 endpoint for s3:// artifact URIs (unset: AWS itself).",
    )
    fast_preprocessing: bool = Field(
        default=True,
        description=(
            "Run the pipeline's imputers, scaler and one-hot encoder as verified NumPy code (see api.fast_pipeline); "
            "the estimator always runs in scikit-learn."
        ),
    )
    model_threads: int = Field(
        default=1,
        ge=1,
        description=(
            "Threads of the model's native code (OpenMP, BLAS) per prediction. 1 is fastest for single records "
            "with one worker per core: thread hand-offs cost more than they save and stall when cores are busy."
        ),
    )
    request_log: bool = Field(default=True, description="Write one JSON log line per request.")
    log_level: str = Field(default="INFO", description="Level of the service's own loggers.")
    setup_hint: str = Field(
        default=DEFAULT_SETUP_HINT, description="How to produce a model; part of the 503 message without one."
    )

    @field_validator("models")
    @classmethod
    def _model_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [n.strip() for n in value.split(",") if n.strip()]
        bad = [n for n in names if not n.isidentifier() or n != n.lower()]
        if bad:
            raise ValueError(
                f"MLOPS_API_MODELS lists {bad}: give dataset names (lower-case identifiers), comma-separated"
            )
        return ",".join(names)

    @property
    def served_models(self) -> frozenset[str] | None:
        """The dataset names ``MLOPS_API_MODELS`` allows (always with the default model), or None: all of them."""
        if self.models is None:
            return None
        return frozenset(self.models.split(",")) | {self.default_model}

    def serves(self, dataset: str) -> bool:
        """Whether the settings allow serving the model of ``dataset``."""
        allowed = self.served_models
        return allowed is None or dataset in allowed

    def for_model(self, registered_model: str) -> ApiSettings:
        """These settings for another registered model (its own store, champion cache and polling)."""
        if registered_model == self.model_name:
            return self
        return self.model_copy(update={"model_name": registered_model})

    @field_validator("tracking_uri")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _cache_off(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "false", "0")):
            return None
        return value

    @field_validator("cache_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError(f"expected s3://<bucket>/<prefix>, got {value!r}")
        return value.rstrip("/")

    @classmethod
    def for_lambda(cls, **values: Any) -> ApiSettings:
        """The settings of the Lambda function: the environment's, with Lambda's defaults where it sets nothing.

        ``max_body_bytes`` defaults to :data:`LAMBDA_MAX_BODY_BYTES` (Lambda's 6 MB request payload limit;
        ``MLOPS_API_MAX_BODY_BYTES`` still overrides it) and ``cache_publish`` is off: the function's role
        reads the shared champion cache, never writes it.
        """
        settings = cls(cache_publish=False, **values)
        if "max_body_bytes" not in settings.model_fields_set:
            settings = settings.model_copy(update={"max_body_bytes": LAMBDA_MAX_BODY_BYTES})
        return settings

    def apply_thread_limits(self) -> None:
        """Export ``OMP_NUM_THREADS`` and friends (unless already set) before the model's libraries load.

        OpenMP reads its thread count when it starts, per thread, so an environment variable set before
        scikit-learn is imported is the one setting that reaches the thread that predicts.
        """
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, str(self.model_threads))

    def cache_key(self) -> tuple[str | None, str, str]:
        """What identifies the served model: two settings with the same key share one model store."""
        return (self.tracking_uri, self.model_name, self.model_alias)
