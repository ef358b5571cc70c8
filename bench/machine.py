"""What every benchmark shares: what it ran on (CPU, cores, Python, the libraries that set the pace) and how its
figures are written."""

from __future__ import annotations

import multiprocessing
import os
import platform
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for independent runs, spawned, not forked: the caller may have started OpenMP threads
    (XGBoost), which a forked child that trains a booster deadlocks on (libgomp is not fork-safe; a test that ran
    a nightly job before the policies bench hung so)."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


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


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    """A bench's figures as indented JSON (keys sorted, numpy values as numbers), and where they went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    )
    print(f"written: {path}")
