"""Duplicate events: the same ``event_id`` again within a window of event time is a duplicate.

Producers retry, and at-least-once upstreams repeat what they sent before a crash, so the same event can
arrive twice. The worker keeps the ids it processed in the last ``processing.dedup_window_s`` of event time
(measured against the watermark) and sends a repeat to the dead-letter topic (reason ``duplicate``): processed
once, never silently dropped. An id is kept as a 64-bit BLAKE2b digest (two different ids collide with
probability about n²/2⁶⁵ for n ids in the window: 10⁻⁸ for a million) with the event time it came at, so memory is
bounded by the window's traffic (~100 bytes an id); an id leaves once the newest event time seen is more than
the window past its own. A repeat that arrives after its first copy left the window is
processed again: choose the window from how late your producers can repeat.

>>> ids = RecentEventIds(window_ms=1000)
>>> ids.seen_before("e1", 0), ids.seen_before("e1", 10), ids.seen_before("e2", 5000), ids.seen_before("e1", 5000)
(False, True, False, False)
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterable
from typing import Any

# A changelog record of the window: a group number and the ids first seen in that group's flush, packed (None
# once every id of the group has left the window). One record per flush, not one per event.
IdChange = tuple[int, bytes | None]
_PAIR = struct.Struct(">Qq")  # an id's digest, the event time it was seen at


def _digest(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def pack_ids(pairs: Iterable[tuple[int, int]]) -> bytes:
    """``(digest, event time)`` pairs as a changelog value (16 bytes each)."""
    return b"".join(_PAIR.pack(key, ts) for key, ts in pairs)


def unpack_ids(data: bytes) -> list[tuple[int, int]]:
    return [_PAIR.unpack_from(data, i) for i in range(0, len(data), _PAIR.size)]


class RecentEventIds:
    """The event ids seen within ``window_ms`` before the newest event time seen (0: remember nothing).

    Which ids are remembered depends on the ids and their times only (those at most ``window_ms`` older than
    the newest time seen), not on the order they came in, so a window rebuilt from its changelog
    (:meth:`flush`, :meth:`apply`) forgets exactly what the original does. With ``track_changes`` the ids first
    seen since the last :meth:`flush` go out as one record (a group), and a group whose newest id has left the
    window is deleted (a tombstone).
    """

    def __init__(self, window_ms: int, track_changes: bool = False) -> None:
        self.window_ms = window_ms
        self.track_changes = track_changes
        self._seen: dict[int, int] = {}  # digest -> event time it was seen with
        self._by_time: list[tuple[int, int]] = []  # heap of (event time, digest)
        self.newest: int | None = None
        self._fresh: list[tuple[int, int]] = []  # (digest, time) first seen since the last flush
        self._groups: dict[int, int] = {}  # group flushed -> its newest id's event time
        self._next_group = 0

    def __len__(self) -> int:
        return len(self._seen)

    def seen_before(self, event_id: str, ts_ms: int) -> bool:
        """True when ``event_id`` came already within the window; otherwise remembers it."""
        if self.window_ms <= 0:
            return False
        if self.newest is None or ts_ms > self.newest:
            self.newest = ts_ms
            self.forget_before(ts_ms - self.window_ms)
        key = _digest(event_id)
        if key in self._seen:
            return True
        self._remember(key, ts_ms)
        if self.track_changes:
            self._fresh.append((key, ts_ms))
        return False

    def _remember(self, key: int, ts_ms: int) -> None:
        self._seen[key] = ts_ms
        heapq.heappush(self._by_time, (ts_ms, key))

    def forget_before(self, before_ms: int) -> None:
        by_time, seen = self._by_time, self._seen
        while by_time and by_time[0][0] < before_ms:
            ts, key = heapq.heappop(by_time)
            if seen.get(key) == ts:
                del seen[key]

    def flush(self) -> list[IdChange]:
        """The ids first seen since the last flush as one new group, and the groups now wholly out of the window
        as deletions."""
        changes: list[IdChange] = []
        if self._fresh:
            group = self._next_group
            self._next_group += 1
            self._groups[group] = max(ts for _, ts in self._fresh)
            changes.append((group, pack_ids(self._fresh)))
            self._fresh = []
        if self.newest is not None:
            cutoff = self.newest - self.window_ms
            for group in [g for g, newest in self._groups.items() if newest < cutoff]:
                del self._groups[group]
                changes.append((group, None))
        return sorted(changes, key=lambda c: c[0])

    def apply(self, changes: Iterable[IdChange]) -> None:
        """Replay changelog records in log order; ids already out of the window (by the newest time known) are
        not taken back."""
        cutoff = None if self.newest is None else self.newest - self.window_ms
        for group, value in changes:
            self._next_group = max(self._next_group, group + 1)
            if value is None:
                self._groups.pop(group, None)
                continue
            pairs = unpack_ids(value)
            self._groups[group] = max(ts for _, ts in pairs)
            for key, ts in pairs:
                if cutoff is None or ts >= cutoff:
                    self._remember(key, ts)

    def snapshot(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "ids": sorted([ts, key] for key, ts in self._seen.items()),
            "groups": sorted([group, newest] for group, newest in self._groups.items()),
            "next_group": self._next_group,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole window. With ``track_changes`` its ids go out as one new group at the next flush
        (the groups they came in are kept, to be deleted once out of the window)."""
        self.newest = data["newest"]
        self._seen = {int(key): int(ts) for ts, key in data["ids"]}
        self._by_time = [(ts, key) for key, ts in self._seen.items()]
        heapq.heapify(self._by_time)
        self._groups = {int(group): int(newest) for group, newest in data.get("groups", [])}
        self._next_group = int(data.get("next_group", 0))
        if self.track_changes:
            self._fresh = sorted(self._seen.items())
