"""The state-store protocol and its in-memory store; the on-disk one is :mod:`models.behaviour.rocksdb_store`.

A store holds every user and open session of the state stage. Beside get, put, pop, close idle and expire, it
can say what changed: :meth:`StateStore.flush` makes every change since the last flush durable and returns
them as changelog records (a key, and the value's bytes or None for a deletion), which :meth:`StateStore.apply`
replays into another store, of either kind, to rebuild an equal one. The state stage mutates the objects a get
returned in place, so a store counts a get as a change.

The conformance suite (``tests/conformance/test_state_stores.py``) runs the same checks on every
implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from models.behaviour.state import (
    SessionState,
    UserState,
    decode_session,
    decode_user,
    encode_session,
    encode_user,
    session_dict,
    session_from_dict,
    user_dict,
)

# A changelog record: the key (a prefix, then the user or session id) and the value, None for a deletion.
Change = tuple[bytes, bytes | None]
USER_KEY = b"u:"
SESSION_KEY = b"s:"


class StateStore(Protocol):
    """The state-store protocol: get, put, pop, close idle sessions, expire users, flush, apply, snapshot."""

    def get_user(self, user_id: str) -> UserState | None: ...
    def put_user(self, user: UserState) -> None: ...
    def get_session(self, session_id: str) -> SessionState | None: ...
    def put_session(self, session: SessionState) -> None: ...
    def pop_session(self, session_id: str) -> SessionState | None: ...
    def close_idle(self, watermark_ms: int, gap_ms: int) -> list[SessionState]: ...
    def expire_users(self, before_ms: int) -> list[str]: ...
    def open_sessions(self) -> list[SessionState]: ...
    @property
    def user_count(self) -> int: ...
    @property
    def session_count(self) -> int: ...
    def flush(self) -> list[Change]: ...
    def apply(self, changes: Iterable[Change]) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, data: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def user_key(user_id: str) -> bytes:
    return USER_KEY + user_id.encode()


def session_key(session_id: str) -> bytes:
    return SESSION_KEY + session_id.encode()


def parse_key(key: bytes) -> tuple[bytes, str]:
    """A changelog key's kind (:data:`USER_KEY` or :data:`SESSION_KEY`) and id; ValueError for any other key."""
    for kind in (USER_KEY, SESSION_KEY):
        if key.startswith(kind):
            return kind, key[len(kind) :].decode()
    raise ValueError(f"not a state-store key: {key[:40]!r}")


def idle_sessions(sessions: Iterable[SessionState], watermark_ms: int, gap_ms: int) -> list[SessionState]:
    """The sessions idle for longer than ``gap_ms`` before the watermark, oldest first (ties by id, so the order
    never depends on a dict's history)."""
    cutoff = watermark_ms - gap_ms
    return sorted((s for s in sessions if s.last_ms < cutoff), key=lambda s: (s.last_ms, s.session_id))


class InMemoryStore:
    """Dicts in memory. With ``track_changes`` it remembers what a get, put or removal touched, for
    :meth:`flush` (the worker's changelog); without, flush returns nothing and costs nothing."""

    def __init__(self, track_changes: bool = False) -> None:
        self.track_changes = track_changes
        self._users: dict[str, UserState] = {}
        self._sessions: dict[str, SessionState] = {}
        self._touched_users: set[str] = set()
        self._touched_sessions: set[str] = set()

    def get_user(self, user_id: str) -> UserState | None:
        if self.track_changes:
            self._touched_users.add(user_id)
        return self._users.get(user_id)

    def put_user(self, user: UserState) -> None:
        if self.track_changes:
            self._touched_users.add(user.user_id)
        self._users[user.user_id] = user

    def get_session(self, session_id: str) -> SessionState | None:
        if self.track_changes:
            self._touched_sessions.add(session_id)
        return self._sessions.get(session_id)

    def put_session(self, session: SessionState) -> None:
        if self.track_changes:
            self._touched_sessions.add(session.session_id)
        self._sessions[session.session_id] = session

    def pop_session(self, session_id: str) -> SessionState | None:
        if self.track_changes:
            self._touched_sessions.add(session_id)
        return self._sessions.pop(session_id, None)

    def close_idle(self, watermark_ms: int, gap_ms: int) -> list[SessionState]:
        """Remove and return the sessions idle for longer than ``gap_ms`` before the watermark, oldest first."""
        stale = idle_sessions(self._sessions.values(), watermark_ms, gap_ms)
        for s in stale:
            del self._sessions[s.session_id]
            if self.track_changes:
                self._touched_sessions.add(s.session_id)
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
        if self.track_changes:
            self._touched_users.update(gone)
        return gone

    def open_sessions(self) -> list[SessionState]:
        return list(self._sessions.values())

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def flush(self) -> list[Change]:
        """The changes since the last flush, in key order (memory is as durable as it gets)."""
        changes: list[Change] = []
        for uid in self._touched_users:
            user = self._users.get(uid)
            changes.append((user_key(uid), None if user is None else encode_user(user)))
        for sid in self._touched_sessions:
            session = self._sessions.get(sid)
            changes.append((session_key(sid), None if session is None else encode_session(session)))
        self._touched_users.clear()
        self._touched_sessions.clear()
        return sorted(changes)

    def apply(self, changes: Iterable[Change]) -> None:
        """Replay changelog records, in log order (the last record of a key wins)."""
        for key, value in changes:
            kind, id_ = parse_key(key)
            if kind == USER_KEY:
                if value is None:
                    self._users.pop(id_, None)
                else:
                    self._users[id_] = decode_user(value)
            elif value is None:
                self._sessions.pop(id_, None)
            else:
                self._sessions[id_] = decode_session(value)

    def snapshot(self) -> dict[str, Any]:
        return {
            "users": [user_dict(u) for u in self._users.values()],
            "sessions": [session_dict(s) for s in self._sessions.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole content (what was there and is not in ``data`` counts as removed)."""
        if self.track_changes:
            self._touched_users.update(self._users)
            self._touched_sessions.update(self._sessions)
        self._users = {u["user_id"]: UserState(**u) for u in data["users"]}
        self._sessions = {s["session_id"]: session_from_dict(s) for s in data["sessions"]}
        if self.track_changes:
            self._touched_users.update(self._users)
            self._touched_sessions.update(self._sessions)

    def close(self) -> None:
        """Nothing to release."""
