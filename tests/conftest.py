"""Shared fixtures. The Kafka broker fixture lives in tests/kafka/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
