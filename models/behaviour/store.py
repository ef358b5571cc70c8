"""The state-store protocol (get, put, pop, close idle, expire, snapshot, restore) and its in-memory store.

The state stage keeps every user and open session in one store; the conformance suite
(``tests/conformance/test_state_stores.py``) runs the same checks on every implementation.
"""

from __future__ import annotations

from typing import Any, Protocol

from models.behaviour.state import SessionState, UserState, session_dict, session_from_dict, user_dict


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
        self._sessions = {s["session_id"]: session_from_dict(s) for s in data["sessions"]}
