"""Duplicate events: the same ``event_id`` again within a window of event time is a duplicate.

Producers retry, and at-least-once upstreams repeat what they sent before a crash, so the same event can
arrive twice. The worker keeps the ids it processed in the last ``processing.dedup_window_s`` of event time
(measured against the watermark) and sends a repeat to the dead-letter topic (reason ``duplicate``): processed
once, never silently dropped. An id is kept as a 64-bit BLAKE2b digest (two different ids collide with
probability about n²/2⁶⁵ for n ids in the window: 10⁻⁸ for a million) in arrival order, so memory is bounded
by the window's traffic (~100 bytes an id). A repeat that arrives after its first copy left the window is
processed again: choose the window from how late your producers can repeat.

>>> ids = RecentEventIds(window_ms=1000)
>>> ids.seen_before("e1", 0), ids.seen_before("e1", 10), ids.seen_before("e2", 5000), ids.seen_before("e1", 5000)
(False, True, False, False)
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any


def _digest(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


class RecentEventIds:
    """The event ids seen within ``window_ms`` before the newest event time seen (0: remember nothing)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._seen: dict[int, int] = {}  # digest -> event time it was seen with
        self._order: deque[tuple[int, int]] = deque()  # (event time, digest) in arrival order
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def seen_before(self, event_id: str, ts_ms: int) -> bool:
        """True when ``event_id`` came already within the window; otherwise remembers it."""
        if self.window_ms <= 0:
            return False
        if self._newest is None or ts_ms > self._newest:
            self._newest = ts_ms
            self._forget(ts_ms - self.window_ms)
        key = _digest(event_id)
        if key in self._seen:
            return True
        self._seen[key] = ts_ms
        self._order.append((ts_ms, key))
        return False

    def _forget(self, before_ms: int) -> None:
        order, seen = self._order, self._seen
        while order and order[0][0] < before_ms:
            ts, key = order.popleft()
            if seen.get(key) == ts:
                del seen[key]

    def snapshot(self) -> dict[str, Any]:
        return {"newest": self._newest, "ids": [[ts, key] for ts, key in self._order]}

    def restore(self, data: dict[str, Any]) -> None:
        self._newest = data["newest"]
        self._order = deque((int(ts), int(key)) for ts, key in data["ids"])
        self._seen = {key: ts for ts, key in self._order}
