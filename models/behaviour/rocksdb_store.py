"""A state store on disk (RocksDB, through rocksdict), for state larger than memory.

Same protocol and the same results as :class:`~models.behaviour.store.InMemoryStore` (the conformance suite runs
both). What lives where:

* **users** on disk under ``u:<user id>``, JSON; those touched since the last :meth:`RocksDictStore.flush` stay in
  a write-back cache (the state stage mutates a user in place after a get), so memory holds one flush
  interval's users, not every user;
* **open sessions** in memory as well as on disk under ``s:<session id>``: they are few (the shoppers active in
  the last hours) and :meth:`~RocksDictStore.close_idle` looks at all of them every minute of event time;
* an **index** ``t:<last event ms, 13 digits>:<user id>`` so that :meth:`~RocksDictStore.expire_users` reads only
  the users old enough to go, not every user.

Nothing reaches the disk before :meth:`~RocksDictStore.flush`, which writes one atomic batch and returns the same
changes as changelog records. Reopening the directory finds the state of the last flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch

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
from models.behaviour.store import SESSION_KEY, USER_KEY, Change, idle_sessions, parse_key, session_key, user_key

INDEX_KEY = b"t:"
COUNT_KEY = b"meta:users"  # how many users the disk holds, kept with them in each batch
_TS_DIGITS = 13  # epoch milliseconds up to the year 2286


def _index_key(last_ms: int, user_id: str) -> bytes:
    return INDEX_KEY + str(max(last_ms, 0)).zfill(_TS_DIGITS).encode() + b":" + user_id.encode()


class RocksDictStore:
    """Users on disk behind a write-back cache, open sessions in memory and on disk, an expiry index."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), options=Options(raw_mode=True))
        self._cache: dict[str, UserState | None] = {}  # users touched since the last flush; None: removed
        self._sessions = {s.session_id: s for s in (decode_session(v) for _, v in self._scan(SESSION_KEY))}
        self._touched_sessions: set[str] = set()
        stored = self._db.get(COUNT_KEY)
        self._stored_users = int(stored) if stored is not None else 0

    # -- users ------------------------------------------------------------------------------------------
    def get_user(self, user_id: str) -> UserState | None:
        if user_id in self._cache:
            return self._cache[user_id]
        user = self._read_user(user_id)
        if user is not None:
            self._cache[user_id] = user
        return user

    def put_user(self, user: UserState) -> None:
        self._cache[user.user_id] = user

    def _read_user(self, user_id: str) -> UserState | None:
        data = self._db.get(user_key(user_id))
        return None if data is None else decode_user(data)

    def expire_users(self, before_ms: int) -> list[str]:
        """Forget the users whose last event is older than ``before_ms`` and whose session is closed; their
        ids, sorted. Reads the index up to ``before_ms`` and the cache, not every user."""
        candidates = {uid for uid, u in self._cache.items() if u is not None and u.last_ms < before_ms}
        limit = _index_key(before_ms, "")
        for key, _ in self._scan(INDEX_KEY):
            if key >= limit:
                break
            candidates.add(key[len(INDEX_KEY) + _TS_DIGITS + 1 :].decode())
        gone = []
        for uid in sorted(candidates):
            user = self.get_user(uid)
            if user is None or user.last_ms >= before_ms:
                continue
            if user.current_session is None or user.current_session not in self._sessions:
                self._cache[uid] = None
                gone.append(uid)
        return gone

    # -- sessions ---------------------------------------------------------------------------------------
    def get_session(self, session_id: str) -> SessionState | None:
        self._touched_sessions.add(session_id)
        return self._sessions.get(session_id)

    def put_session(self, session: SessionState) -> None:
        self._touched_sessions.add(session.session_id)
        self._sessions[session.session_id] = session

    def pop_session(self, session_id: str) -> SessionState | None:
        self._touched_sessions.add(session_id)
        return self._sessions.pop(session_id, None)

    def close_idle(self, watermark_ms: int, gap_ms: int) -> list[SessionState]:
        stale = idle_sessions(self._sessions.values(), watermark_ms, gap_ms)
        for s in stale:
            del self._sessions[s.session_id]
            self._touched_sessions.add(s.session_id)
        return stale

    def open_sessions(self) -> list[SessionState]:
        return list(self._sessions.values())

    @property
    def user_count(self) -> int:
        """Users on disk, corrected by the cache's additions and removals (reads the disk for new ones)."""
        count = self._stored_users
        for uid, user in self._cache.items():
            on_disk = self._db.get(user_key(uid)) is not None
            count += (user is not None) - on_disk
        return count

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- durability and the changelog -----------------------------------------------------------------
    def flush(self) -> list[Change]:
        """Write every change since the last flush in one atomic batch; the changes, in key order."""
        batch = WriteBatch(raw_mode=True)
        changes: list[Change] = []
        for uid, user in self._cache.items():
            key = user_key(uid)
            old = self._db.get(key)
            if old is not None:
                batch.delete(_index_key(decode_user(old).last_ms, uid))
                self._stored_users -= 1
            if user is None:
                if old is not None:
                    batch.delete(key)
                changes.append((key, None))
                continue
            value = encode_user(user)
            batch.put(key, value)
            batch.put(_index_key(user.last_ms, uid), b"")
            self._stored_users += 1
            changes.append((key, value))
        for sid in self._touched_sessions:
            key = session_key(sid)
            session = self._sessions.get(sid)
            if session is None:
                batch.delete(key)
                changes.append((key, None))
            else:
                value = encode_session(session)
                batch.put(key, value)
                changes.append((key, value))
        batch.put(COUNT_KEY, str(self._stored_users).encode())
        self._db.write(batch)
        self._cache.clear()
        self._touched_sessions.clear()
        return sorted(changes)

    def apply(self, changes: Iterable[Change]) -> None:
        """Replay changelog records, in log order (the last record of a key wins); durable at the next flush."""
        for key, value in changes:
            kind, id_ = parse_key(key)
            if kind == USER_KEY:
                self._cache[id_] = None if value is None else decode_user(value)
                continue
            self._touched_sessions.add(id_)
            if value is None:
                self._sessions.pop(id_, None)
            else:
                self._sessions[id_] = decode_session(value)

    # -- whole-store views ------------------------------------------------------------------------------
    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()

    def _users(self) -> Iterator[UserState]:
        for key, value in self._scan(USER_KEY):
            if key[len(USER_KEY) :].decode() not in self._cache:
                yield decode_user(value)
        yield from (u for u in self._cache.values() if u is not None)

    def snapshot(self) -> dict[str, Any]:
        """Every user and session as JSON-able data (reads the whole disk: for tests and migrations)."""
        return {
            "users": [user_dict(u) for u in self._users()],
            "sessions": [session_dict(s) for s in self._sessions.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole content; durable at the next flush."""
        for user in list(self._users()):
            self._cache[user.user_id] = None
        self._touched_sessions.update(self._sessions)
        for u in data["users"]:
            self._cache[u["user_id"]] = UserState(**u)
        self._sessions = {s["session_id"]: session_from_dict(s) for s in data["sessions"]}
        self._touched_sessions.update(self._sessions)

    def close(self) -> None:
        """Release the database (call :meth:`flush` first: what was not flushed is lost, as in a crash)."""
        self._db.close()
