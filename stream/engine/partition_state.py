"""One input partition's state: everything the core keeps per user, owned by the partition the user's events are in.

The message key is the user id, so a user's events stay in one partition, and everything keyed by user lives
with that partition: the users and open sessions (the state stage's store and its watermark), the decisions
still waiting for a purchase (the reward ledger), the offers each user was shown and bought after (offer
history), and the event ids within the de-duplication window. The learners are not here: they are the fleet's,
learned from every partition (see :mod:`stream.engine.processor`).

Because a partition's state is a function of that partition's events alone (its own event time closes its
sessions and its decisions' attribution windows), a partition moved to another worker continues there exactly
as it would have here. With ``track_changes``, :meth:`PartitionState.flush` returns every change since the last
flush as changelog records (key, value bytes or None for a deletion), which :meth:`PartitionState.apply` replays
into a fresh partition state, on any worker, to rebuild an equal one:

=====================  ====================================================
``u:<user id>``        a user (:mod:`models.behaviour.state`, JSON)
``s:<session id>``     an open session (JSON)
``d:<decision id>``    an open decision (JSON); None once resolved
``h:<user id>``        offers shown to the user and bought after, ``[shown, bought]``
``e:<group>``          the event ids first seen in one flush, as (digest, event time) pairs; None once all of
                       them left the de-duplication window
``w:``                 the partition's clock: watermark, last sweeps, the window's newest time, and the
                       next input offset, so a restored state knows which input it reflects
=====================  ====================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, tzinfo
from typing import Any

import orjson

from bandits.rewards import RewardLedger, decode_decision, encode_decision
from models.behaviour.store import SESSION_KEY, USER_KEY, Change, InMemoryStore, StateStore
from models.behaviour.tracker import StateTracker
from stream.engine.dedup import RecentEventIds
from stream.engine.settings import ProcessingSettings

DECISION_KEY = b"d:"
HISTORY_KEY = b"h:"
EVENT_ID_KEY = b"e:"
CLOCK_KEY = b"w:"


class PartitionState:
    """The state stage's store and clock, open decisions, offer history and de-duplication window of one partition."""

    def __init__(
        self,
        partition: int,
        settings: ProcessingSettings,
        tz: tzinfo = UTC,
        store: StateStore | None = None,
        track_changes: bool = False,
        user_vectors: bool = True,
    ) -> None:
        self.partition = partition
        self.track_changes = track_changes
        if store is None:
            store = InMemoryStore(track_changes=track_changes)
        self.tracker = StateTracker(settings, tz, user_vectors, store=store)
        window_ms = int(settings.attribution_window_s * 1000)
        self.ledger = RewardLedger(settings.offers, settings.margin, window_ms, track_changes=track_changes)
        self.recent_ids = RecentEventIds(int(settings.dedup_window_s * 1000), track_changes=track_changes)
        self.offer_history: dict[str, list[int]] = {}  # user -> [offers shown, bought after one]
        self._history_touched: set[str] = set()
        self._clock_flushed: bytes | None = None
        self.next_offset: int | None = None  # the input offset after the last record this state reflects

    @property
    def store(self) -> StateStore:
        return self.tracker.store

    @property
    def watermark_ms(self) -> int | None:
        return self.tracker.watermark_ms

    # -- offer history -----------------------------------------------------------------------------------
    def shown_and_bought(self, user_id: str) -> tuple[int, int]:
        shown, bought = self.offer_history.get(user_id, (0, 0))
        return shown, bought

    def note_shown(self, user_id: str) -> None:
        self.offer_history.setdefault(user_id, [0, 0])[0] += 1
        if self.track_changes:
            self._history_touched.add(user_id)

    def note_bought(self, user_id: str) -> None:
        self.offer_history.setdefault(user_id, [0, 0])[1] += 1
        if self.track_changes:
            self._history_touched.add(user_id)

    def forget_users(self, user_ids: Iterable[str]) -> None:
        """Users the state stage expired take their offer history with them."""
        for user_id in user_ids:
            if self.offer_history.pop(user_id, None) is not None and self.track_changes:
                self._history_touched.add(user_id)

    # -- the changelog -----------------------------------------------------------------------------------
    def _clock(self) -> bytes:
        clock = self.tracker.clock() | {"dedup_newest": self.recent_ids.newest, "next_offset": self.next_offset}
        return orjson.dumps(clock)

    def flush(self) -> list[Change]:
        """Make the store's changes durable and return every change since the last flush as changelog records,
        in key order (empty without ``track_changes``, apart from what the store itself tracks)."""
        changes = self.store.flush()
        for decision_id, decision in self.ledger.flush():
            changes.append(
                (DECISION_KEY + decision_id.encode(), None if decision is None else encode_decision(decision))
            )
        for user_id in sorted(self._history_touched):
            history = self.offer_history.get(user_id)
            changes.append((HISTORY_KEY + user_id.encode(), None if history is None else orjson.dumps(history)))
        self._history_touched.clear()
        for group, ids in self.recent_ids.flush():
            changes.append((EVENT_ID_KEY + group.to_bytes(8, "big"), ids))
        if self.track_changes:
            clock = self._clock()
            if clock != self._clock_flushed:
                changes.append((CLOCK_KEY, clock))
                self._clock_flushed = clock
        changes.sort(key=lambda c: c[0])
        return changes

    def apply(self, changes: Iterable[Change]) -> None:
        """Replay changelog records, in log order, into this partition's state (the last record of a key wins)."""
        store: list[Change] = []
        decisions = []
        ids: list[tuple[int, bytes | None]] = []
        clock: bytes | None = None
        for key, value in changes:
            if key.startswith(USER_KEY) or key.startswith(SESSION_KEY):
                store.append((key, value))
            elif key.startswith(DECISION_KEY):
                decisions.append((key[2:].decode(), None if value is None else decode_decision(value)))
            elif key.startswith(HISTORY_KEY):
                user_id = key[2:].decode()
                if value is None:
                    self.offer_history.pop(user_id, None)
                else:
                    self.offer_history[user_id] = [int(n) for n in orjson.loads(value)]
            elif key.startswith(EVENT_ID_KEY):
                ids.append((int.from_bytes(key[2:], "big"), value))
            elif key == CLOCK_KEY:
                clock = value
            else:
                raise ValueError(f"not a partition-state key: {key[:40]!r}")
        if clock is not None:  # first: the window's newest time decides which ids are still in it
            data = orjson.loads(clock)
            self.tracker.set_clock(data)
            self.recent_ids.newest = data["dedup_newest"]
            self.next_offset = data.get("next_offset")
            self._clock_flushed = clock
        self.store.apply(store)
        self.ledger.apply(decisions)
        self.recent_ids.apply(ids)
        if self.recent_ids.newest is not None:  # ids read before a later clock record may have left the window
            self.recent_ids.forget_before(self.recent_ids.newest - self.recent_ids.window_ms)

    # -- snapshots (the worker's local checkpoint) -------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.snapshot(),
            "ledger": self.ledger.snapshot(),
            "offer_history": dict(sorted(self.offer_history.items())),
            "recent_ids": self.recent_ids.snapshot(),
            "next_offset": self.next_offset,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.tracker.restore(data["tracker"])
        self.ledger.restore(data["ledger"])
        if self.track_changes:
            self._history_touched.update(self.offer_history)
        self.offer_history = {k: list(v) for k, v in data["offer_history"].items()}
        if self.track_changes:
            self._history_touched.update(self.offer_history)
        self.recent_ids.restore(data["recent_ids"])
        self.next_offset = data.get("next_offset")

    def close(self) -> None:
        self.store.close()


PartitionStateFactory = Callable[[int], PartitionState]


def in_memory_states(
    settings: ProcessingSettings, tz: tzinfo = UTC, track_changes: bool = False
) -> PartitionStateFactory:
    """Builds each partition's state in memory (the file replay's; the Kafka worker's keep their changes)."""
    return functools.partial(PartitionState, settings=settings, tz=tz, track_changes=track_changes)
