"""The shared checks every state store must pass (memory today; persistent backends join here)."""

import orjson
import pytest

from models.behaviour.state import SessionState, UserState
from models.behaviour.store import InMemoryStore, StateStore

STORES = {"memory": InMemoryStore}


@pytest.fixture(params=sorted(STORES))
def store(request) -> StateStore:
    return STORES[request.param]()


def test_get_put_and_missing(store):
    assert store.get_user("u") is None and store.get_session("s") is None
    store.put_user(UserState("u", 1, 2, sessions=3))
    store.put_session(SessionState("s", "u", 1, 2, counts={"search": 2}))
    assert store.get_user("u").sessions == 3 and store.get_session("s").count("search") == 2


def test_snapshot_restore_through_json_gives_an_equal_store(store):
    store.put_user(UserState("u", 1, 2, revenue=9.5))
    store.put_session(SessionState("s", "u", 1, 2, cart_value=3.0, counts={"add_to_cart": 1}))
    snap = orjson.loads(orjson.dumps(store.snapshot()))
    twin = type(store)()
    twin.restore(snap)
    assert twin.snapshot() == store.snapshot()


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
