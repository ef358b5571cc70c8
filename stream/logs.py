"""Logging, configured once at the entry point: one line per record, ``key=value`` friendly."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr, force=True)
    # kafka-python is chatty at INFO (every connection and rebalance step); keep its warnings.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
