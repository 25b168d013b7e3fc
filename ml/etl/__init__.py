"""ETL steps over the S3 lake: extract (source -> raw), validate (raw -> validated + quarantine), split.

Each step is a plain function that takes the dataset spec and a :class:`ml.lake.Lake`, reads its input
from the lake, writes its output and a manifest back, and returns the manifest (small and JSON-friendly,
so an Airflow task can pass it on as an XCom). Steps are idempotent: re-running one on the same input
rewrites the same keys with the same content.
"""

from ml.etl.extract import extract
from ml.etl.split import split
from ml.etl.validate import ValidationFailedError, validate

__all__ = ["ValidationFailedError", "extract", "split", "validate"]
