"""Checkpoints written by earlier versions, brought to the current format so that an upgrade keeps every user.

Version 2 (before state by input partition) kept one store of every user, one reward ledger, one offer history
and one de-duplication window for the whole worker, with a watermark per source (``"0"``, ``"1"``: the input
partitions). Version 3 keeps them per input partition. A user's partition is the one Kafka's default
partitioner gives the user id (the message key), which is where the user's events were and will be; the
partitions are those the checkpoint's offsets name. Sessions, open decisions and offer history follow their
user; the de-duplication window (event-id digests, which name no user) is copied to every partition, where it
expires as before; each partition takes its own watermark, and the next offset the checkpoint recorded for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from stream.engine.processor import SNAPSHOT_VERSION
from stream.kafka.clients import partition_for_key

log = logging.getLogger(__name__)


def migrate_checkpoint(offsets: Mapping[str, int | None], state: dict[str, Any]) -> dict[str, Any]:
    """``state`` in the current format (returned as it is when it already is, or is of a version unknown here:
    the core then refuses it with the reason)."""
    if state.get("version") != 2 or SNAPSHOT_VERSION != 3:
        return state
    at = {int(name.rpartition(":")[2]): offset for name, offset in offsets.items()}
    if not at:
        return state
    count = max(at) + 1
    tracker = state["tracker"]
    window = state.get("recent_ids", {"newest": None, "ids": []})
    parts: dict[int, dict[str, Any]] = {
        p: {
            "tracker": {
                "watermark_ms": tracker["source_watermarks"].get(str(p)),
                "last_sweep_ms": tracker["last_sweep_ms"],
                "last_user_sweep_ms": tracker.get("last_user_sweep_ms", 0),
                "store": {"users": [], "sessions": []},
            },
            "ledger": {"open": []},
            "offer_history": {},
            "recent_ids": window,
            "next_offset": at.get(p),
        }
        for p in range(count)
    }

    def part(user_id: str) -> dict[str, Any]:
        return parts[partition_for_key(user_id.encode(), count)]

    for user in tracker["store"]["users"]:
        part(user["user_id"])["tracker"]["store"]["users"].append(user)
    for session in tracker["store"]["sessions"]:
        part(session["user_id"])["tracker"]["store"]["sessions"].append(session)
    for decision in state["ledger"]["open"]:
        part(decision["user_id"])["ledger"]["open"].append(decision)
    for user_id, history in state["offer_history"].items():
        part(user_id)["offer_history"][user_id] = history
    migrated = {k: v for k, v in state.items() if k not in ("tracker", "ledger", "offer_history", "recent_ids")}
    migrated["version"] = 3
    migrated["partitions"] = {str(p): data for p, data in sorted(parts.items())}
    log.warning(
        "migrated a version-2 checkpoint: %d users, %d open sessions, %d open decisions into %d input partitions",
        len(tracker["store"]["users"]),
        len(tracker["store"]["sessions"]),
        len(state["ledger"]["open"]),
        len(parts),
    )
    return migrated
