"""Per-user and per-session state, kept in event time and bounded by a TTL.

The processing core owns one :class:`StateStore`; everything in it is plain data that snapshots to JSON and
restores to an equal store (no pickle), so a checkpoint can be inspected and cannot run code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from stream.contract import EVENT_TYPES

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


class StateStore(Protocol):
    """The state-store protocol: get, put, delete, snapshot, restore."""

    def get_user(self, user_id: str) -> UserState | None: ...
    def put_user(self, user: UserState) -> None: ...
    def get_session(self, session_id: str) -> SessionState | None: ...
    def put_session(self, session: SessionState) -> None: ...
    def expire(self, watermark_ms: int, session_ttl_ms: int) -> int: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, data: dict[str, Any]) -> None: ...


class InMemoryStore:
    """Dicts in memory. Sessions idle longer than the TTL (in event time) are forgotten by :meth:`expire`."""

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

    def expire(self, watermark_ms: int, session_ttl_ms: int) -> int:
        """Forget sessions idle for longer than ``session_ttl_ms``; returns how many went."""
        cutoff = watermark_ms - session_ttl_ms
        stale = [sid for sid, s in self._sessions.items() if s.last_ms < cutoff]
        for sid in stale:
            del self._sessions[sid]
        return len(stale)

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def snapshot(self) -> dict[str, Any]:
        return {
            "users": [asdict(u) for u in self._users.values()],
            "sessions": [asdict(s) for s in self._sessions.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._users = {u["user_id"]: UserState(**u) for u in data["users"]}
        self._sessions = {s["session_id"]: SessionState(**s) for s in data["sessions"]}
