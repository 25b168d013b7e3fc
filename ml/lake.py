"""The S3 data lake: the only module that talks to S3.

Configured from the environment (:class:`ml.settings.S3Settings`: endpoint URL, region, keys), it works
against any S3 API: MinIO, SeaweedFS, LocalStack or AWS. Every write is one whole-object PUT, which S3
makes atomic, and the ETL steps write manifests last, so a reader never sees half a dataset.

Layout (``<d>`` = dataset name, ``<v>`` = version)::

    raw/<d>/<sha>/data.csv, manifest.json       exactly what the source gave
    raw/<d>/latest.json                          pointer to the newest raw manifest
    validated/<d>/<v>/data.parquet, report.json  rows that passed validation
    quarantine/<d>/<v>/rows.csv                  rows that failed, each with its reasons
    processed/<d>/<v>/train.parquet, test.parquet, manifest.json
    processed/<d>/current.json                   pointer to the current processed split
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import pandas as pd
import pydantic
from botocore.config import Config
from botocore.exceptions import ClientError

from ml.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # boto3-stubs[s3] (dev dependency): types only

Document = TypeVar("Document", bound=pydantic.BaseModel)


class LakeError(RuntimeError):
    """An S3 operation failed; the message names the bucket, key and the S3 error."""


def s3_client(settings: S3Settings | None = None) -> S3Client:
    """Create a boto3 S3 client for any S3 API (path-style addressing, bounded retries and timeouts)."""
    settings = settings or S3Settings()
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id.get_secret_value() if settings.access_key_id else None,
        aws_secret_access_key=settings.secret_access_key.get_secret_value() if settings.secret_access_key else None,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


@dataclass
class Lake:
    """A bucket of the data lake with typed helpers (bytes, JSON, CSV, Parquet)."""

    bucket: str
    client: S3Client

    @classmethod
    def from_env(cls, bucket: str) -> Lake:
        """A lake on ``bucket`` configured from the environment."""
        return cls(bucket=bucket, client=s3_client())

    def uri(self, key: str) -> str:
        """``s3://bucket/key`` for messages and manifests."""
        return f"s3://{self.bucket}/{key}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise LakeError(f"cannot create bucket {self.bucket!r}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write one object (atomic) and return its ``s3://`` URI."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            raise LakeError(f"cannot write {self.uri(key)}: {exc}") from exc
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read one object; :class:`LakeError` says which one is missing."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise LakeError(f"{self.uri(key)} does not exist; run the step that produces it first") from exc
            raise LakeError(f"cannot read {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise LakeError(f"cannot check {self.uri(key)}: {exc}") from exc
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """All keys under a prefix."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def put_json(self, key: str, payload: dict[str, Any]) -> str:
        """Write a JSON document."""
        return self.put_bytes(key, json.dumps(payload, indent=2, sort_keys=True).encode(), "application/json")

    def get_json(self, key: str) -> dict[str, Any]:
        """Read a JSON document."""
        document: dict[str, Any] = json.loads(self.get_bytes(key))
        return document

    def put_model(self, key: str, document: pydantic.BaseModel) -> str:
        """Write a contract (:mod:`ml.contracts`) as a JSON document."""
        return self.put_json(key, document.model_dump(mode="json"))

    def get_model(self, key: str, model: type[Document]) -> Document:
        """Read a JSON document as the contract ``model``; :class:`LakeError` says what is wrong with it."""
        try:
            return model.model_validate(self.get_json(key))
        except (pydantic.ValidationError, ValueError) as exc:
            raise LakeError(f"{self.uri(key)} is not a valid {model.__name__}: {exc}") from exc

    def put_parquet(self, key: str, frame: pd.DataFrame) -> str:
        """Write a DataFrame as Parquet (types preserved, no index)."""
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(key, buffer.getvalue(), "application/vnd.apache.parquet")

    def get_parquet(self, key: str) -> pd.DataFrame:
        """Read a Parquet object into a DataFrame."""
        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))

    def put_csv(self, key: str, frame: pd.DataFrame) -> str:
        """Write a DataFrame as CSV (no index)."""
        return self.put_bytes(key, frame.to_csv(index=False).encode(), "text/csv")
