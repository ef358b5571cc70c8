"""Bounded state: idle users are forgotten after their TTL, duplicates are dead letters, memory per user is known."""

from __future__ import annotations

import tracemalloc

import orjson
from factories import T0, event, processor, records

from stream.core.records import OutputKind
from stream.engine.dedup import RecentEventIds

DAY = 86_400_000


def _p(**processing):
    return processor(processing=processing)


def test_a_repeated_event_id_is_a_dead_letter_and_processed_once():
    p = _p(dedup_window_s=600)
    first = event("e-1", "add_to_cart", ts=T0, cart_value=30.0)
    outs = p.process_batch(records([first, event("e-2", "page_view", ts=T0 + 1000), first]))
    dead = [o for o in outs if o.kind is OutputKind.DEAD_LETTER]
    assert len(dead) == 1 and dead[0].body["reason"] == "duplicate" and "e-1" in dead[0].body["detail"]
    assert p.counters["events"] == 2 and p.counters["dead_letters.duplicate"] == 1
    assert len([o for o in outs if o.kind is OutputKind.DECISION]) == 1


def test_a_repeat_after_the_window_is_processed_again():
    p = _p(dedup_window_s=60)
    e = event("e-1", "page_view", ts=T0)
    later = event("e-9", "page_view", ts=T0 + 120_000)
    p.process_batch(records([e, later, e]))
    assert p.counters["dead_letters.duplicate"] == 0 and p.counters["events"] == 3


def test_the_dedup_window_survives_a_checkpoint():
    p = _p(dedup_window_s=600)
    p.process_batch(records([event("e-1", "page_view", ts=T0)]))
    twin = _p(dedup_window_s=600)
    twin.restore(orjson.loads(orjson.dumps(p.snapshot())))
    twin.process_batch(records([event("e-1", "page_view", ts=T0 + 5)]))
    assert twin.counters["dead_letters.duplicate"] == 1


def test_idle_users_are_forgotten_with_their_offer_history():
    p = _p(user_ttl_s=2 * 86400)
    early = [event(f"a{i}", "add_to_cart", ts=T0, user=f"u{i}", session=f"s{i}", cart_value=20.0) for i in range(5)]
    p.process_batch(records(early))
    [part] = p.partitions.values()
    assert p.user_count == 5
    shown = {u for u in part.offer_history}
    later = [event(f"k{d}", "page_view", ts=T0 + d * DAY, user="keeper", session=f"k{d}") for d in range(1, 5)]
    p.process_batch(records(later))
    assert p.user_count == 1 and part.store.get_user("keeper") is not None
    assert not set(part.offer_history) & shown
    assert p.counters["users_expired"] == 5


def test_ids_are_forgotten_as_event_time_moves_on():
    ids = RecentEventIds(window_ms=1_000)
    for i in range(10_000):
        ids.seen_before(f"e{i}", i * 10)
    assert len(ids) <= 101


def test_memory_per_user_is_measured():
    """Reported in the README: the state one user costs (user state, an idle session, offer history)."""
    p = _p()
    n = 2_000
    evs = [
        e
        for i in range(n)
        for e in (
            event(f"v{i}", "page_view", ts=T0 + i, user=f"user-{i:06d}", session=f"s{i}"),
            event(f"c{i}", "add_to_cart", ts=T0 + i + 1, user=f"user-{i:06d}", session=f"s{i}", cart_value=42.0),
        )
    ]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    p.process_batch(records(evs))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    per_user = grown / n
    print(f"memory per user (user + open session + offer history + pending decision): {per_user:.0f} bytes")
    assert p.user_count == n
    assert 500 < per_user < 50_000


def test_the_window_goes_to_the_changelog_a_group_per_flush_and_comes_back_equal():
    ids = RecentEventIds(window_ms=1_000, track_changes=True)
    log = []
    for i in range(2_000):
        ids.seen_before(f"e{i % 1_500}", i * 5)  # some repeats inside the window, most outside
        if i % 100 == 99:
            log += ids.flush()
    assert len(log) < 60  # one record per flush (20), and a deletion per group gone (the ids are 2,000)
    assert any(value is None for _, value in log)
    last = {group: value for group, value in log}
    rebuilt = RecentEventIds(window_ms=1_000)
    rebuilt.newest = ids.newest
    rebuilt.apply((group, value) for group, value in last.items() if value is not None)
    assert rebuilt.snapshot()["ids"] == ids.snapshot()["ids"] and len(rebuilt) > 100
