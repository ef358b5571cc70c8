"""The open-loop stream: deterministic, time-ordered, unique ids, and every event fits the contract."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from stream.core.contract import EVENT_TYPES
from stream.simulator import Simulation

TYPES = set(EVENT_TYPES)
PRICED = {"product_view", "add_to_cart", "remove_from_cart"}
VALUED = {"add_to_cart", "remove_from_cart", "checkout_start", "purchase"}


def run(**kwargs) -> list[dict]:
    sim = Simulation(**{"days": 2, "users": 300, "seed": 11, **kwargs})
    events = []
    while (ev := sim.next_event()) is not None:
        events.append(ev)
    return events


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return run()


def test_same_seed_same_events_and_different_seed_different(events: list[dict]) -> None:
    assert run() == events
    assert run(seed=12) != events


def test_time_ordered_unique_ids_and_inside_the_horizon(events: list[dict]) -> None:
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    assert len({e["event_id"] for e in events}) == len(events)
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
    assert ts[0] >= start
    starts = [e["ts"] for e in events if e["type"] == "session_start"]
    assert max(starts) < start + 2 * 86_400_000


def test_start_is_a_parameter() -> None:
    events = run(start="2026-03-01T00:00:00Z", users=20, days=1)
    assert events[0]["ts"] >= int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
    with pytest.raises(ValueError):
        Simulation(start=datetime(2026, 3, 1))  # noqa: DTZ001 - naive on purpose


def _cents(x: float) -> bool:
    return round(x, 2) == x


def test_every_event_fits_the_contract(events: list[dict]) -> None:
    for e in events:
        assert isinstance(e["event_id"], str) and e["event_id"]
        assert isinstance(e["ts"], int)
        assert isinstance(e["user_id"], str) and e["user_id"].startswith("u")
        assert isinstance(e["session_id"], str)
        assert e["type"] in TYPES
        assert e["device"] in {"mobile", "desktop", "tablet"}
        assert e["referrer"] in {"direct", "search", "email", "social", "ads"}
        if e["type"] in PRICED:
            assert isinstance(e["price"], float) and e["price"] >= 0 and _cents(e["price"])
            assert isinstance(e["product_id"], str) and isinstance(e["category"], str)
        if e["type"] in VALUED:
            assert isinstance(e["cart_value"], float) and e["cart_value"] > 0 and _cents(e["cart_value"])
            assert isinstance(e["quantity"], int) and e["quantity"] >= 1
        if e["type"] == "purchase":
            assert e["revenue"] == e["cart_value"]
            assert "decision_id" not in e  # open loop: nobody saw an offer


def test_sessions_are_well_formed(events: list[dict]) -> None:
    sessions: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        sessions[e["session_id"]].append(e)
    ended = 0
    for evs in sessions.values():
        kinds = [e["type"] for e in evs]
        assert kinds[0] == "session_start" and kinds.count("session_start") == 1
        assert len({e["user_id"] for e in evs}) == 1 and len({e["device"] for e in evs}) == 1
        ended += kinds[-1] == "session_end"
        assert kinds.count("session_end") <= 1 and ("session_end" not in kinds or kinds[-1] == "session_end")
        if "purchase" in kinds:
            assert kinds.index("add_to_cart") < kinds.index("checkout_start") < kinds.index("purchase")
        cart: dict[str, float] = {}
        for e in evs:  # cart_value is the running total of adds minus removals
            if e["type"] == "add_to_cart":
                cart[e["product_id"]] = cart.get(e["product_id"], 0) + e["price"] * e["quantity"]
            elif e["type"] == "remove_from_cart":
                cart[e["product_id"]] -= e["price"] * e["quantity"]
            if e["type"] in VALUED:
                assert e["cart_value"] == pytest.approx(sum(cart.values()), abs=0.011)
        gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(evs)]
        assert all(0 < g <= 20 * 60_000 for g in gaps)
    assert 0.8 < ended / len(sessions) < 0.97
