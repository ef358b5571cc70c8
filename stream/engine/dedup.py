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
from collections.abc import Iterable
from typing import Any

# A changelog record of the window: an id's digest and the event time it was seen at, None once it left.
IdChange = tuple[int, int | None]


def _digest(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


class RecentEventIds:
    """The event ids seen within ``window_ms`` before the newest event time seen (0: remember nothing).

    Which ids are remembered depends on the ids and their times only, not on the order they came in, so a
    window rebuilt from its changelog (:meth:`flush`, :meth:`apply`) forgets exactly what the original does.
    """

    def __init__(self, window_ms: int, track_changes: bool = False) -> None:
        self.window_ms = window_ms
        self.track_changes = track_changes
        self._seen: dict[int, int] = {}  # digest -> event time it was seen with
        self._by_time: list[tuple[int, int]] = []  # heap of (event time, digest)
        self.newest: int | None = None
        self._changed: dict[int, int | None] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def seen_before(self, event_id: str, ts_ms: int) -> bool:
        """True when ``event_id`` came already within the window; otherwise remembers it."""
        if self.window_ms <= 0:
            return False
        if self.newest is None or ts_ms > self.newest:
            self.newest = ts_ms
            self._forget(ts_ms - self.window_ms)
        key = _digest(event_id)
        if key in self._seen:
            return True
        self._remember(key, ts_ms)
        if self.track_changes:
            self._changed[key] = ts_ms
        return False

    def _remember(self, key: int, ts_ms: int) -> None:
        self._seen[key] = ts_ms
        heapq.heappush(self._by_time, (ts_ms, key))

    def _forget(self, before_ms: int) -> None:
        by_time, seen = self._by_time, self._seen
        while by_time and by_time[0][0] < before_ms:
            ts, key = heapq.heappop(by_time)
            if seen.get(key) == ts:
                del seen[key]
                if self.track_changes:
                    self._changed[key] = None

    def flush(self) -> list[IdChange]:
        """What changed since the last flush (ids remembered, ids forgotten), by digest."""
        changes = sorted(self._changed.items())
        self._changed.clear()
        return changes

    def apply(self, changes: Iterable[IdChange]) -> None:
        """Replay changelog records in log order (the last record of an id wins)."""
        for key, ts in changes:
            if ts is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = ts
        self._by_time = [(ts, key) for key, ts in self._seen.items()]
        heapq.heapify(self._by_time)

    def snapshot(self) -> dict[str, Any]:
        return {"newest": self.newest, "ids": sorted([ts, key] for key, ts in self._seen.items())}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole window (with ``track_changes``, what leaves it counts as forgotten)."""
        if self.track_changes:
            self._changed.update(dict.fromkeys(self._seen))
        self.newest = data["newest"]
        self._seen = {int(key): int(ts) for ts, key in data["ids"]}
        self._by_time = [(ts, key) for key, ts in self._seen.items()]
        heapq.heapify(self._by_time)
        if self.track_changes:
            self._changed.update(self._seen)
