"""Structured logging: every log line of the service is one JSON object (for CloudWatch, Loki, jq).

``log.info("message", extra={"fields": {...}})`` adds the fields to the object. :func:`configure_logging`
installs the formatter on the ``api`` logger once; uvicorn's own loggers are left alone.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_CONFIGURED = "_mlops_json_handler"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: ``ts``, ``level``, ``logger``, ``message``, extra ``fields``, ``error``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; the ``fields`` extra is merged in and exceptions become an ``error`` string."""
        created = record.created
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send the ``api`` loggers' records to stderr as JSON lines at ``level`` (idempotent)."""
    logger = logging.getLogger("api")
    logger.setLevel(level.upper())
    if any(getattr(h, _CONFIGURED, False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _CONFIGURED, True)
    logger.addHandler(handler)
    logger.propagate = False
