"""The state stage: sessions close by their own rules and the features depend on the events alone."""

import math

import orjson
from factories import MINUTE, T0, event, settings

from models.behaviour.tracker import StateTracker
from stream.core.contract import Event

HOUR = 60 * MINUTE


def ev(*args, **kw) -> Event:
    return Event.model_validate(event(*args, **kw))


def tracker(**processing) -> StateTracker:
    return StateTracker(settings(processing=processing).processing)


def test_session_end_closes_with_its_label_and_first_decision_features():
    t = tracker()
    t.apply(ev("e1", "product_view", ts=T0, price=20.0))
    first = t.apply(ev("e2", "add_to_cart", ts=T0 + MINUTE, price=20.0))
    t.apply(ev("e3", "purchase", ts=T0 + 2 * MINUTE, revenue=20.0))
    end = t.apply(ev("e4", "session_end", ts=T0 + 3 * MINUTE))
    [closed] = end.closed_after
    assert closed.purchased and closed.decision_features == first.features
    assert closed.decision_ms == T0 + MINUTE and t.store.get_session("s1") is None


def test_one_decision_point_per_session_by_default():
    t = tracker()
    a = t.apply(ev("e1", "add_to_cart", ts=T0, price=5.0))
    b = t.apply(ev("e2", "checkout_start", ts=T0 + MINUTE))
    assert a.features is not None and b.features is None


def test_an_inferred_session_closes_when_its_user_comes_back_after_the_gap():
    t = tracker()
    t.apply(ev("e1", "add_to_cart", ts=T0, session=None, price=5.0))
    back = t.apply(ev("e2", "page_view", ts=T0 + 31 * MINUTE, session=None))
    [closed] = back.closed_before
    assert not closed.purchased and closed.session_id == f"u1:{T0}" and back.session_id == f"u1:{T0 + 31 * MINUTE}"


def test_idle_sessions_close_at_the_ttl_not_the_gap_so_a_lagging_partition_keeps_its_session():
    t = tracker(session_ttl_s=4 * 3600)
    t.apply(ev("a1", "add_to_cart", ts=T0, user="a", session="sa", price=5.0))
    other = t.apply(ev("b1", "page_view", ts=T0 + HOUR, user="b", session="sb"))  # the watermark runs ahead
    assert other.closed_before == []
    late = t.apply(ev("a2", "checkout_start", ts=T0 + 2 * MINUTE, user="a", session="sa"))
    assert late.features is None  # still the same session: its one decision is taken
    swept = t.apply(ev("b2", "page_view", ts=T0 + 6 * HOUR, user="b", session="sb2"))
    assert [c.session_id for c in swept.closed_before] == ["sa", "sb"]


def test_rolling_counts_decay_with_event_time():
    t = tracker()
    for i in range(4):
        t.apply(ev(f"v{i}", "product_view", ts=T0 + i, price=10.0))
    t.apply(ev("e9", "session_end", ts=T0 + 10))
    day_later = t.apply(ev("c1", "add_to_cart", ts=T0 + 24 * HOUR, session="s2", price=10.0))
    f = day_later.features
    assert math.isclose(f["views_1d"], 2.0, rel_tol=1e-3)  # half-life 1 day: 4 views → 2
    assert math.isclose(f["views_14d"], 4 * 0.5 ** (1 / 14), rel_tol=1e-3)
    assert f["user_sessions"] == 2.0 and math.isnan(f["days_since_last_purchase"])
    assert f["price_vs_usual"] == 1.0


def test_the_same_events_give_the_same_features_whatever_came_before_in_other_users():
    quiet, busy = tracker(), tracker()
    for i in range(50):
        busy.apply(ev(f"x{i}", "search", ts=T0 + i * MINUTE, user=f"other{i}", session=f"o{i}"))
    events = [ev("e1", "product_view", ts=T0 + 60 * MINUTE, price=30.0), ev("e2", "add_to_cart", ts=T0 + 61 * MINUTE)]
    got = [[t.apply(e).features for e in events][-1] for t in (quiet, busy)]
    assert got[0] == got[1]


def test_the_state_stage_gives_the_same_results_on_disk_as_in_memory(tmp_path):
    """A simulated shop through the tracker twice, once on each store (the disk one flushed every 500 events):
    the same features at every decision point, the same closed sessions and expired users, the same state."""
    from factories import simulated_events

    from models.behaviour.rocksdb_store import RocksDictStore

    events = [Event.model_validate(e) for e in simulated_events("abrupt", days=3, users=400, seed=5)]
    s = settings(processing={"user_ttl_s": 86_400.0}).processing
    trackers = {"memory": StateTracker(s), "rocksdb": StateTracker(s, store=RocksDictStore(tmp_path / "db"))}
    seen, expired = {}, {}
    for name, t in trackers.items():
        out, expired[name] = [], 0
        for i, e in enumerate(events):
            r = t.apply(e)
            expired[name] += len(r.expired_users)
            out.append((r.session_id, r.features, [c.session_id for c in r.closed_before + r.closed_after]))
            out.append(tuple(r.expired_users))
            if i % 500 == 0:
                t.store.flush()
        seen[name] = orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)
    assert seen["memory"] == seen["rocksdb"]
    assert expired["memory"] > 0
    assert sum(1 for e in events if e.type in ("add_to_cart", "checkout_start")) > 50
    assert trackers["memory"].store.user_count == trackers["rocksdb"].store.user_count > 0
