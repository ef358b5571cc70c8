"""Shared fixtures. The Kafka broker fixture lives in tests/kafka/conftest.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as stream/__init__.py: before numpy's first import
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).parent))
