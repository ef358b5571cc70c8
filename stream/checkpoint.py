"""Snapshots of the processing core on a clean stop, restored only when they match the committed offsets.

A snapshot is JSON (no pickle: loading it cannot run code), written atomically (temporary file, fsync,
rename). It records the consumer group's committed offsets at the moment it was taken; a worker that starts
restores it only if the group's committed offsets are still exactly those — otherwise (a crash after more
commits, another worker took over) it is stale, and the worker says so and starts empty.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


def snapshot_path(state_dir: Path, group_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in group_id)
    return state_dir / f"{safe}.snapshot.json"


def offsets_key(offsets: dict[Any, int | None]) -> dict[str, int | None]:
    """``{TopicPartition: offset}`` as ``{"topic:partition": offset}`` (JSON keys)."""
    return {f"{tp.topic}:{tp.partition}": off for tp, off in offsets.items()}


def write_snapshot(path: Path, offsets: dict[str, int | None], state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps({"offsets": offsets, "state": state}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_snapshot(path: Path) -> tuple[dict[str, int | None], dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        data = orjson.loads(path.read_bytes())
        return data["offsets"], data["state"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("snapshot %s is unreadable (%s); starting with empty state", path, exc)
        return None
