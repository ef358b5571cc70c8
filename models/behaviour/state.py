"""Per-user and per-session state, kept in event time; a session closes after an inactivity gap.

The processing core owns one :class:`StateStore`; everything in it is plain data that snapshots to JSON and
restores to an equal store (no pickle), so a checkpoint can be inspected and cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from stream.core.contract import EVENT_TYPES

NAN = float("nan")

# Session-level counters every feature definition may read; one per behaviour we count.
COUNTED_TYPES = tuple(t for t in EVENT_TYPES if t not in ("session_start", "session_end"))


@dataclass(slots=True)
class SessionState:
    session_id: str
    user_id: str
    started_ms: int
    last_ms: int
    device: str | None = None
    referrer: str | None = None
    cart_value: float = 0.0
    price_sum: float = 0.0
    price_n: int = 0
    decisions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    purchased: bool = False
    # the behaviour features at the session's first decision point: what the intent learner learns from when
    # the session closes (its label is ``purchased``)
    decision_features: dict[str, float] | None = None
    decision_ms: int | None = None

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)


@dataclass(slots=True)
class UserState:
    user_id: str
    first_ms: int
    last_ms: int
    sessions: int = 0
    purchases: int = 0
    revenue: float = 0.0
    current_session: str | None = None
    last_purchase_ms: int | None = None
    usual_price: float | None = None
    # rolling counts (see models.behaviour.features): one exponentially decayed count per behaviour and half-life
    decayed: list[float] = field(default_factory=lambda: [0.0] * 12)
    decayed_ms: int = 0


class StateStore(Protocol):
    """The state-store protocol: get, put, delete, snapshot, restore."""

    def get_user(self, user_id: str) -> UserState | None: ...
    def put_user(self, user: UserState) -> None: ...
    def get_session(self, session_id: str) -> SessionState | None: ...
    def put_session(self, session: SessionState) -> None: ...
    def pop_session(self, session_id: str) -> SessionState | None: ...
    def close_idle(self, watermark_ms: int, gap_ms: int) -> list[SessionState]: ...
    def expire_users(self, before_ms: int) -> list[str]: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, data: dict[str, Any]) -> None: ...


class InMemoryStore:
    """Dicts in memory. Sessions idle longer than the gap (in event time) are closed by :meth:`close_idle`."""

    def __init__(self) -> None:
        self._users: dict[str, UserState] = {}
        self._sessions: dict[str, SessionState] = {}

    def get_user(self, user_id: str) -> UserState | None:
        return self._users.get(user_id)

    def put_user(self, user: UserState) -> None:
        self._users[user.user_id] = user

    def get_session(self, session_id: str) -> SessionState | None:
        return self._sessions.get(session_id)

    def put_session(self, session: SessionState) -> None:
        self._sessions[session.session_id] = session

    def pop_session(self, session_id: str) -> SessionState | None:
        return self._sessions.pop(session_id, None)

    def close_idle(self, watermark_ms: int, gap_ms: int) -> list[SessionState]:
        """Remove and return the sessions idle for longer than ``gap_ms`` before the watermark, oldest first
        (ties by id, so the order never depends on the dict's history)."""
        cutoff = watermark_ms - gap_ms
        stale = sorted(
            (s for s in self._sessions.values() if s.last_ms < cutoff), key=lambda s: (s.last_ms, s.session_id)
        )
        for s in stale:
            del self._sessions[s.session_id]
        return stale

    def expire_users(self, before_ms: int) -> list[str]:
        """Forget the users whose last event is older than ``before_ms`` and whose session is closed; their
        ids, sorted."""
        gone = sorted(
            uid
            for uid, u in self._users.items()
            if u.last_ms < before_ms and (u.current_session is None or u.current_session not in self._sessions)
        )
        for uid in gone:
            del self._users[uid]
        return gone

    def open_sessions(self) -> list[SessionState]:
        return list(self._sessions.values())

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def snapshot(self) -> dict[str, Any]:
        return {
            "users": [user_dict(u) for u in self._users.values()],
            "sessions": [session_dict(s) for s in self._sessions.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._users = {u["user_id"]: UserState(**u) for u in data["users"]}
        self._sessions = {s["session_id"]: _session(s) for s in data["sessions"]}


_USER_FIELDS = tuple(f.name for f in fields(UserState))
_SESSION_FIELDS = tuple(f.name for f in fields(SessionState))


def user_dict(user: UserState) -> dict[str, Any]:
    """``dataclasses.asdict(user)``, ten times faster: the fields are numbers, strings and one list of floats,
    so a copy of that list is the only deep copy needed (a checkpoint holds every user; asdict's generic deep copy
    made it the worker's longest pause)."""
    data = {name: getattr(user, name) for name in _USER_FIELDS}
    data["decayed"] = list(user.decayed)
    return data


def session_dict(session: SessionState) -> dict[str, Any]:
    """``dataclasses.asdict(session)``: its two dicts (counts, decision features) hold numbers only."""
    data = {name: getattr(session, name) for name in _SESSION_FIELDS}
    data["counts"] = dict(session.counts)
    if session.decision_features is not None:
        data["decision_features"] = dict(session.decision_features)
    return data


def _session(data: dict[str, Any]) -> SessionState:
    """A session from JSON, where a missing feature (NaN) was written as null."""
    features = data.get("decision_features")
    if features is not None:
        data = {**data, "decision_features": {k: NAN if v is None else v for k, v in features.items()}}
    return SessionState(**data)
