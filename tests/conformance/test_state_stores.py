"""The shared checks every state store must pass: in memory, and on disk (RocksDB)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.behaviour.rocksdb_store import RocksDictStore
from models.behaviour.state import SessionState, UserState
from models.behaviour.store import Change, InMemoryStore, StateStore

Factory = Callable[[], StateStore]


def _memory(tmp_path: Path) -> Factory:
    return lambda: InMemoryStore(track_changes=True)


def _rocksdb(tmp_path: Path) -> Factory:
    paths = (tmp_path / f"db{i}" for i in range(1_000))
    return lambda: RocksDictStore(next(paths))


BACKENDS = {"memory": _memory, "rocksdb": _rocksdb}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request, tmp_path) -> Factory:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture()
def store(make_store) -> StateStore:
    return make_store()


def normalised(store: StateStore) -> dict[str, Any]:
    """The store's content in an order that does not depend on its history or backend."""
    snap = orjson.loads(orjson.dumps(store.snapshot()))
    return {
        "users": sorted(snap["users"], key=lambda u: u["user_id"]),
        "sessions": sorted(snap["sessions"], key=lambda s: s["session_id"]),
    }


def test_get_put_and_missing(store):
    assert store.get_user("u") is None and store.get_session("s") is None
    store.put_user(UserState("u", 1, 2, sessions=3))
    store.put_session(SessionState("s", "u", 1, 2, counts={"search": 2}))
    assert store.get_user("u").sessions == 3 and store.get_session("s").count("search") == 2


def test_snapshot_restore_through_json_gives_an_equal_store(store, make_store):
    store.put_user(UserState("u", 1, 2, revenue=9.5))
    store.put_session(SessionState("s", "u", 1, 2, cart_value=3.0, counts={"add_to_cart": 1}))
    snap = orjson.loads(orjson.dumps(store.snapshot()))
    twin = make_store()
    twin.restore(snap)
    assert normalised(twin) == normalised(store)


def test_idle_sessions_close_by_event_time_oldest_first(store):
    for i in reversed(range(100)):
        store.put_session(SessionState(f"s{i}", "u", i * 1000, i * 1000))
    closed = store.close_idle(watermark_ms=100_000, gap_ms=50_000)
    assert [s.session_id for s in closed] == [f"s{i}" for i in range(50)]
    assert store.get_session("s49") is None and store.get_session("s50") is not None
    assert store.pop_session("s50").session_id == "s50" and store.get_session("s50") is None


def test_idle_users_expire_unless_their_session_is_open(store):
    store.put_user(UserState("old", 1, 1_000))
    store.put_user(UserState("old-but-in-session", 1, 1_000, current_session="s"))
    store.put_session(SessionState("s", "old-but-in-session", 900, 1_000))
    store.put_user(UserState("old-session-closed", 1, 1_000, current_session="gone"))
    store.put_user(UserState("recent", 1, 9_000))
    assert store.expire_users(before_ms=5_000) == ["old", "old-session-closed"]
    assert store.get_user("old") is None and store.get_user("old-session-closed") is None
    assert store.get_user("old-but-in-session") is not None and store.get_user("recent") is not None
    assert store.expire_users(before_ms=5_000) == []


def test_expiry_sees_what_was_flushed_and_what_changed_since(store):
    store.put_user(UserState("stale", 1, 1_000))
    store.put_user(UserState("active-again", 1, 1_000))
    store.flush()
    store.get_user("active-again").last_ms = 9_000  # the state stage mutates in place
    assert store.expire_users(before_ms=5_000) == ["stale"]
    store.flush()
    assert store.get_user("stale") is None and store.user_count == 1
    assert store.expire_users(before_ms=5_000) == []


def test_a_change_made_in_place_after_a_get_is_flushed(store):
    store.put_user(UserState("u", 1, 2))
    store.put_session(SessionState("s", "u", 1, 2))
    store.flush()
    store.get_user("u").purchases = 4
    store.get_session("s").counts["search"] = 7
    changes = dict(store.flush())
    assert orjson.loads(changes[b"u:u"])["purchases"] == 4
    assert orjson.loads(changes[b"s:s"])["counts"] == {"search": 7}
    assert store.flush() == []


def _random_work(store: StateStore, rng: random.Random, steps: int = 600, start_ms: int = 0) -> list[Change]:
    """What the state stage does to a store, at random: new users and sessions, in-place changes, closes,
    expiries, flushes; the flushes' changes, in order."""
    log: list[Change] = []
    for step in range(steps):
        ts = start_ms + step * 1_000
        uid = f"u{rng.randrange(40)}"
        user = store.get_user(uid)
        if user is None:
            user = UserState(uid, first_ms=ts, last_ms=ts)
            store.put_user(user)
        user.last_ms = ts
        user.revenue += rng.choice((0.0, 0.0, 12.5))
        sid = f"{uid}-s{rng.randrange(3)}"
        session = store.get_session(sid)
        if session is None:
            session = SessionState(sid, uid, started_ms=ts, last_ms=ts)
            store.put_session(session)
        session.last_ms = ts
        session.counts["product_view"] = session.counts.get("product_view", 0) + 1
        user.current_session = sid
        if rng.random() < 0.05:
            store.pop_session(sid)
        if step % 37 == 0:
            store.close_idle(ts, 60_000)
        if step % 91 == 0:
            store.expire_users(ts - 120_000)
        if step % 53 == 0:
            log.extend(store.flush())
    return log


def test_every_backend_ends_in_the_same_state_from_the_same_work(make_store, tmp_path):
    reference = InMemoryStore()
    _random_work(reference, random.Random(7))
    store = make_store()
    _random_work(store, random.Random(7))
    store.flush()
    assert normalised(store) == normalised(reference)
    assert (store.user_count, store.session_count) == (reference.user_count, reference.session_count)


@pytest.mark.parametrize("into", sorted(BACKENDS))
def test_the_changelog_rebuilds_an_equal_store_in_any_backend(make_store, tmp_path, into):
    store = make_store()
    log: list[Change] = []
    rng = random.Random(11)
    for round_ in range(4):
        log.extend(_random_work(store, rng, steps=150, start_ms=round_ * 150_000))
        log.extend(store.flush())
    rebuilt = BACKENDS[into](tmp_path / "rebuilt")()
    rebuilt.apply(log)
    rebuilt.flush()
    assert normalised(rebuilt) == normalised(store)


def test_rocksdb_reopens_at_its_last_flush(tmp_path):
    store = RocksDictStore(tmp_path / "db")
    _random_work(store, random.Random(3))
    store.flush()
    flushed = normalised(store)
    store.get_user(store.open_sessions()[0].user_id).revenue = 1e6  # never flushed: lost, as in a crash
    store.put_user(UserState("unflushed", 1, 2))
    store.close()
    reopened = RocksDictStore(tmp_path / "db")
    assert normalised(reopened) == flushed
    assert reopened.user_count == len(flushed["users"])
    reopened.close()


def test_rocksdb_holds_only_the_users_touched_since_the_last_flush_in_memory(tmp_path):
    store = RocksDictStore(tmp_path / "db")
    for i in range(2_000):
        store.put_user(UserState(f"u{i}", i, i))
    store.flush()
    assert store.get_user("u7").last_ms == 7
    assert len(store._cache) == 1  # white-box: the write-back cache, not the whole population
    assert store.user_count == 2_000
    store.close()
