"""What a benchmark ran on: CPU, cores, Python and the versions of the libraries that set the pace."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kafka-python": version("kafka-python"),
        "river": version("river"),
        "numpy": version("numpy"),
        "xgboost": version("xgboost-cpu") if _installed("xgboost-cpu") else version("xgboost"),
        "platform": platform.platform(),
    }


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True
