"""Settings of the ML library, read from the environment (prefix ``MLOPS_``) in one place.

The embedded stack, the Pulumi program and the Airflow DAGs all configure the library by setting these
environment variables (see :func:`MLSettings.to_env`); nothing else in :mod:`ml` reads ``os.environ``.
S3 and MLflow use the standard variable names that boto3 and MLflow already understand
(``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``MLFLOW_TRACKING_URI``...), so the same environment
also works for a user's notebook.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "data"


class S3Settings(BaseSettings):
    """Connection to any S3 API (MinIO, SeaweedFS, AWS): endpoint, region and keys."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
        description="S3 API endpoint; unset means AWS itself.",
    )
    region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION"),
        description="Region of the S3 API (any value for MinIO and SeaweedFS).",
    )
    access_key_id: SecretStr | None = Field(
        default=None, validation_alias="AWS_ACCESS_KEY_ID", description="S3 access key; unset: boto3's own lookup."
    )
    secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY", description="S3 secret key of that access key."
    )


class MLSettings(BaseSettings):
    """Everything the ETL, the search and the registry gate can be told from the environment.

    The metric, the gate's threshold and margin, the MLflow experiment and the registered model are set per
    dataset, in its spec (ml/datasets/<name>.yaml, section training).
    """

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", populate_by_name=True)

    dataset: str = Field(
        default="breast_cancer",
        description="The default dataset: the one commands use when given none, and the model that the API's "
        "unnamed routes (/predict, /model) serve.",
    )
    datasets: str = Field(
        default="all",
        description="The active datasets, each with its own DAGs, study, experiment and registered model: 'all' "
        "(every spec in ml/datasets/) or a comma-separated list of spec names.",
    )
    lake_bucket: str = Field(default="lake", description="S3 bucket of the data lake.")
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Directory that relative 'path' options of file readers (csv) are resolved against "
        "(default: the repository's data/ folder).",
    )
    max_invalid_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Validation fails when more than this fraction of rows fails."
    )
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Fraction of the rows held out as the test set.")
    seed: int = Field(default=42, description="Seed of the split, the folds and the search (reproducible runs).")

    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI"),
        description="MLflow server (runs, models, registry); unset: MLflow's own default (a local ./mlruns).",
    )

    optuna_storage: str = Field(
        default="sqlite:///optuna.db", description="Optuna RDB storage URL (Postgres in the stack)."
    )
    n_trials: int = Field(default=60, ge=1, description="Trial budget of one search, over all workers.")
    tuning_workers: int = Field(default=2, ge=1, description="Parallel workers (Airflow mapped tasks).")
    cv_folds: int = Field(default=5, ge=2, description="Folds of the cross-validation each trial is scored by.")
    trial_heartbeat_s: int = Field(
        default=10, ge=1, description="Seconds between the heartbeats a running trial writes to the Optuna storage."
    )
    trial_grace_s: int = Field(
        default=30,
        ge=2,
        description="A running trial whose last heartbeat is older than this is failed as interrupted (its "
        "process died) and its configuration queued again; at least twice the heartbeat interval.",
    )
    trial_max_retries: int = Field(
        default=2, ge=0, description="How often the configuration of an interrupted trial is run again."
    )
    max_failed_trials: int | None = Field(
        default=None,
        ge=0,
        description="A search gives up (raises) once more trials than this have failed or been interrupted; "
        "failed trials do not count toward the budget, so this bounds the extra work. Default: the budget.",
    )

    @model_validator(mode="after")
    def _grace_spans_heartbeats(self) -> MLSettings:
        if self.trial_grace_s < 2 * self.trial_heartbeat_s:
            raise ValueError(
                f"trial_grace_s ({self.trial_grace_s}) must be at least twice trial_heartbeat_s "
                f"({self.trial_heartbeat_s}), or a live trial whose heartbeat is late would be taken for a dead one"
            )
        return self

    def active_datasets(self) -> list[str]:
        """The names of the active dataset specs (checked: an unknown name raises ``SpecError``)."""
        from ml.spec import SpecError, available_datasets

        shipped = available_datasets()
        if self.datasets.strip().lower() == "all":
            return shipped
        names = [n.strip() for n in self.datasets.split(",") if n.strip()]
        unknown = [n for n in names if n not in shipped]
        if unknown or not names:
            raise SpecError(
                f"MLOPS_DATASETS={self.datasets!r}: unknown dataset(s) {unknown} (available: {', '.join(shipped)}); "
                "use 'all' or a comma-separated list of spec names"
            )
        return names

    def to_env(self) -> dict[str, str]:
        """Render these settings as the environment variables that reproduce them (no secrets here).

        The default data directory is left out: it is a path on this machine, and every checkout has its own.
        """
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None or name == "tracking_uri" or (name == "data_dir" and value == DEFAULT_DATA_DIR):
                continue
            env[f"MLOPS_{name.upper()}"] = str(value)
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return env
