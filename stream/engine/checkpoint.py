"""Signed snapshots of the processing core, with the consumer offsets the state reflects.

A snapshot is JSON, written atomically (temporary file, fsync, rename, folder fsync). The River learners inside
it are pickled (River's own objects), so the file is **signed**: an HMAC-SHA256 over its bytes with a key from
``state_key`` in the settings or, when none is configured, a random key kept in ``STATE_DIR/.checkpoint.key``
(mode 0600). A file whose signature does not match — edited, truncated, written with another key — is refused
with a log line and never unpickled.

The worker writes one every ``checkpoint_every_records`` and at a clean stop; :mod:`stream.app.recovery` decides
at start what it is worth against the group's committed offsets.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


def snapshot_path(state_dir: Path, group_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in group_id)
    return state_dir / f"{safe}.snapshot.json"


def offsets_key(offsets: Mapping[Any, int | None]) -> dict[str, int | None]:
    """``{TopicPartition: offset}`` as ``{"topic:partition": offset}`` (JSON keys)."""
    return {f"{tp.topic}:{tp.partition}": off for tp, off in offsets.items()}


_MAGIC = b"offerstream-checkpoint hmac-sha256 "


def checkpoint_key(state_dir: Path, configured: bytes | None = None) -> bytes:
    """The signing key: the configured one, else this state directory's own random key (created once)."""
    if configured:
        return configured
    path = state_dir / ".checkpoint.key"
    if not path.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32).hex().encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(path.with_suffix(".tmp"), path)
    return path.read_bytes().strip()


def write_snapshot(path: Path, offsets: dict[str, int | None], state: dict[str, Any], key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps({"offsets": offsets, "state": state})
    signature = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + signature + b"\n" + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:  # disk full, quota, I/O error: the previous checkpoint stays as it was
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)  # the rename itself survives a power loss only once its folder is synced
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_snapshot(path: Path, key: bytes) -> tuple[dict[str, int | None], dict[str, Any]] | None:
    """The snapshot's offsets and state, or None (absent, unsigned, tampered or unreadable: logged)."""
    if not path.is_file():
        return None
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n")
    if not head.startswith(_MAGIC):
        log.error("snapshot %s is not a signed checkpoint; refusing it and starting with empty state", path)
        return None
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(head[len(_MAGIC) :], expected):
        log.error("snapshot %s fails its signature check (tampered or another key); starting with empty state", path)
        return None
    try:
        data = orjson.loads(body)
        return data["offsets"], data["state"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("snapshot %s is unreadable (%s); starting with empty state", path, exc)
        return None
