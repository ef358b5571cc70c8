"""The state stage: valid events in, per-user and per-session state, behaviour features at decision points.

Everything here is a function of the event sequence alone — never of the policy's choices — so the nightly
trainer and the strategy lab rebuild exactly the features the worker used by running the archived events
through this same tracker, and the processing core can run this stage over a whole batch before it scores the
batch's decision points in one vectorised call (see :mod:`stream.engine.processor`).

Sessions: an event's ``session_id``, or, when it names none, the user's current session unless idle longer
than the gap (then a new one). A session *closes* at its ``session_end`` event, when the same user's next
event starts a new inferred session, or once the watermark is more than ``session_ttl_s`` past its last event
(swept every minute of event time). Closing resolves the intent label (did the session buy?) and forgets the
session; an event for a closed session id opens a new session.

The watermark that closes idle sessions and expires users is this tracker's own: the latest event time it
has applied. The engine runs one tracker per input partition (a user's events stay in one partition, keyed by
user id), so what a partition's state becomes depends on that partition's events alone, whichever worker reads
it and however the partitions interleave: a partition read hours of event time behind another closes nothing
early, and a partition moved to another worker continues there exactly as it would have here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol

from models.behaviour.features import behaviour_features, user_vector_at
from models.behaviour.settings import SessionSettings
from models.behaviour.state import COUNTED_TYPES, SessionState, UserState, record_activity
from models.behaviour.store import InMemoryStore, StateStore

SWEEP_EVERY_MS = 60_000
USER_SWEEP_EVERY_MS = 3_600_000  # idle users are looked for once an hour of event time (a pass over all users)


class TrackedEvent(Protocol):
    """What the state stage reads of an event: a validated :class:`~stream.core.contract.Event`, or an archived one
    (:class:`models.snapshots.archive_rows.ArchivedEvent`, already validated when it was archived)."""

    @property
    def event_id(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def user_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def price(self) -> float | None: ...
    @property
    def quantity(self) -> int | None: ...
    @property
    def cart_value(self) -> float | None: ...
    @property
    def revenue(self) -> float | None: ...
    @property
    def device(self) -> str | None: ...
    @property
    def referrer(self) -> str | None: ...
    @property
    def decision_id(self) -> str | None: ...


@dataclass(slots=True)
class ClosedSession:
    """A session that ended: its label, the features of its first decision point and the user's long-run vector."""

    session_id: str
    user_id: str
    purchased: bool
    decision_features: dict[str, float] | None
    decision_ms: int | None
    user_vector: dict[str, float]
    closed_ms: int


@dataclass(slots=True)
class Tracked:
    """What the state stage learned from one event, for the decision stage."""

    event: TrackedEvent
    session_id: str
    watermark_advanced: bool
    revenue: float | None = None  # on a purchase: the revenue attributed to it
    features: dict[str, float] | None = None  # at a decision point: the behaviour features
    closed_before: list[ClosedSession] = field(default_factory=list)  # idle sessions the watermark closed
    closed_after: list[ClosedSession] = field(default_factory=list)  # this event's session, on session_end
    expired_users: list[str] = field(default_factory=list)  # users idle past processing.user_ttl_s, forgotten


class StateTracker:
    """Applies valid events to the state store in arrival order; marks decision points."""

    def __init__(
        self,
        settings: SessionSettings,
        tz: tzinfo = UTC,
        user_vectors: bool = True,
        store: StateStore | None = None,
    ) -> None:
        self.store: StateStore = store if store is not None else InMemoryStore()
        self.tz = tz
        self.user_vectors = user_vectors  # the segmenter's input at each close; the nightly trainer needs none
        self.watermark_ms: int | None = None
        self.started_ms: int | None = None  # the first event's time (None: not started, or a state saved before)
        self.last_sweep_ms = 0
        self.last_user_sweep_ms = 0
        self._user_ttl_ms = int(settings.user_ttl_s * 1000)
        self._gap_ms = int(settings.session_gap_s * 1000)
        self._ttl_ms = int(max(settings.session_ttl_s, settings.session_gap_s) * 1000)
        self._decision_events = frozenset(settings.decision_events)
        self._max_decisions = settings.max_decisions_per_session

    def apply(self, event: TrackedEvent) -> Tracked:
        """Apply one event (the next of this tracker's partition, file or archive)."""
        ts = event.ts_ms
        advanced = self.watermark_ms is None or ts > self.watermark_ms
        if self.watermark_ms is None:
            self.started_ms = ts
        closed_before: list[ClosedSession] = []
        expired: list[str] = []
        if advanced:
            self.watermark_ms = ts
            if ts - self.last_sweep_ms >= SWEEP_EVERY_MS:
                self.last_sweep_ms = ts
                closed_before = [self._closed(s, ts) for s in self.store.close_idle(ts, self._ttl_ms)]
                if ts - self.last_user_sweep_ms >= USER_SWEEP_EVERY_MS:
                    self.last_user_sweep_ms = ts
                    expired = self.store.expire_users(ts - self._user_ttl_ms)
        user, session = self._track(event, closed_before)
        tracked = Tracked(event, session.session_id, advanced, closed_before=closed_before, expired_users=expired)
        if event.type == "purchase":
            tracked.revenue = self._purchase(event, user, session)
        if event.type in self._decision_events and session.decisions < self._max_decisions:
            session.decisions += 1
            tracked.features = behaviour_features(session, user, ts, self.tz)
            if session.decision_features is None:
                session.decision_features = tracked.features
                session.decision_ms = ts
        if event.type == "session_end":
            self.store.pop_session(session.session_id)
            tracked.closed_after.append(self._closed(session, ts))
        return tracked

    def _track(self, event: TrackedEvent, closed: list[ClosedSession]) -> tuple[UserState, SessionState]:
        ts = event.ts_ms
        user = self.store.get_user(event.user_id)
        if user is None:
            user = UserState(event.user_id, first_ms=ts, last_ms=ts, decayed_ms=ts)
            self.store.put_user(user)
        session_id = event.session_id or self._inferred_session(user, ts, closed)
        session = self.store.get_session(session_id)
        if session is None:
            session = SessionState(session_id, event.user_id, started_ms=ts, last_ms=ts)
            self.store.put_session(session)
            user.sessions += 1
        kind = event.type
        if kind in COUNTED_TYPES:
            session.counts[kind] = session.counts.get(kind, 0) + 1
        if event.price is not None and kind in ("product_view", "add_to_cart"):
            session.price_sum += event.price
            session.price_n += 1
        record_activity(user, kind, ts, event.price)
        if event.cart_value is not None:
            session.cart_value = event.cart_value
        elif event.price is not None and kind in ("add_to_cart", "remove_from_cart"):
            delta = event.price * (event.quantity if event.quantity is not None else 1)
            session.cart_value = max(0.0, session.cart_value + (delta if kind == "add_to_cart" else -delta))
        session.device = event.device or session.device
        session.referrer = event.referrer or session.referrer
        session.last_ms = max(session.last_ms, ts)
        user.last_ms = max(user.last_ms, ts)
        user.current_session = session_id
        return user, session

    def _inferred_session(self, user: UserState, ts: int, closed: list[ClosedSession]) -> str:
        current = self.store.get_session(user.current_session) if user.current_session else None
        if current is not None:
            if 0 <= ts - current.last_ms <= self._gap_ms:
                return current.session_id
            if ts > current.last_ms:  # the user moved on: the previous session's label is known now
                self.store.pop_session(current.session_id)
                closed.append(self._closed(current, ts))
        return f"{user.user_id}:{ts}"

    def _purchase(self, event: TrackedEvent, user: UserState, session: SessionState) -> float:
        if event.revenue is not None:
            revenue = event.revenue
        elif event.cart_value is not None:
            revenue = event.cart_value
        else:
            revenue = session.cart_value
        user.purchases += 1
        user.revenue += revenue
        user.last_purchase_ms = (
            event.ts_ms if user.last_purchase_ms is None else max(user.last_purchase_ms, event.ts_ms)
        )
        session.purchased = True
        session.cart_value = 0.0
        return revenue

    def _closed(self, session: SessionState, ts: int) -> ClosedSession:
        user = self.store.get_user(session.user_id)
        assert user is not None, "a session's user is never forgotten before it"
        vector = user_vector_at(session, user, ts) if self.user_vectors else {}
        return ClosedSession(
            session.session_id,
            session.user_id,
            session.purchased,
            session.decision_features,
            session.decision_ms,
            vector,
            ts,
        )

    def warm(self, ts_ms: int, history_ms: int) -> bool:
        """Whether the users' history features are filled at ``ts_ms``: the tracker has seen ``history_ms`` of
        events by then. A tracker that started empty knows every user as new at first, so their long-window
        features keep growing for weeks; a state saved before trackers kept their start counts as warm."""
        return self.started_ms is None or ts_ms - self.started_ms >= history_ms

    def clock(self) -> dict[str, int | None]:
        """The tracker's own time: its watermark, its start and when it last swept (with the store, all of its
        state)."""
        return {
            "watermark_ms": self.watermark_ms,
            "started_ms": self.started_ms,
            "last_sweep_ms": self.last_sweep_ms,
            "last_user_sweep_ms": self.last_user_sweep_ms,
        }

    def set_clock(self, data: dict[str, Any]) -> None:
        self.watermark_ms = data["watermark_ms"]
        self.started_ms = data.get("started_ms")
        self.last_sweep_ms = data["last_sweep_ms"]
        self.last_user_sweep_ms = data.get("last_user_sweep_ms", 0)

    def snapshot(self) -> dict[str, Any]:
        return self.clock() | {"store": self.store.snapshot()}

    def restore(self, data: dict[str, Any]) -> None:
        self.set_clock(data)
        self.store.restore(data["store"])
