"""Logging, configured once at the entry point: one line per record, as text or as JSON (``log_format``).

Text: ``time LEVEL logger: message``. JSON (for log pipelines: Loki, Elasticsearch, Cloud Logging): one object
per line with ``time``, ``level``, ``logger``, ``message`` and the record's structured fields, e.g. ``topic``,
``partition`` and ``offset`` on every line about a message (see :func:`where`), and ``exc_info`` with a
traceback. python-json-logger's orjson formatter writes them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message"]
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

LogFormat = Literal["text", "json"]


def formatter(fmt: LogFormat = "text") -> logging.Formatter:
    if fmt == "json":
        return OrjsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES)
    return logging.Formatter(FORMAT)


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # kafka-python is chatty at INFO (every connection and rebalance step); keep its warnings.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def where(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """``extra=`` for a log line about one message: structured fields in JSON logs."""
    return {"topic": topic, "partition": partition, "offset": offset}
