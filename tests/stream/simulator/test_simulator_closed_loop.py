"""Closed loop: decision points block their session until answered; offers move only their own session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest

from stream.simulator import Simulation, closed_loop_run

OfferFor = Callable[[dict], str | None]


def drive(offer_for: OfferFor, **kwargs) -> tuple[Simulation, list[dict]]:
    """Answer every decision point at once with ``offer_for(event)``; returns the sim and all events."""
    sim = Simulation(**{"days": 3, "users": 1500, "seed": 5, "closed_loop": True, **kwargs})
    events = []
    while (ev := sim.next_event()) is not None:
        events.append(ev)
        if sim.awaiting_response(ev["event_id"]):
            assert sim.blocked_count() == 1
            sim.respond(ev["event_id"], offer_for(ev), "d-" + ev["event_id"])
    assert sim.done()
    return sim, events


def by_session(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        out[e["session_id"]].append(e)
    return out


@pytest.fixture(scope="module")
def baseline() -> tuple[Simulation, list[dict]]:
    return drive(lambda ev: "none")


def test_a_blocked_session_emits_nothing_until_answered() -> None:
    sim = Simulation(days=1, users=400, seed=3, closed_loop=True)
    held = None
    later: list[dict] = []
    while (ev := sim.next_event()) is not None:
        if held is None and sim.awaiting_response(ev["event_id"]):
            held = ev
            assert sim.expected_profit(ev["event_id"]) is not None
            continue
        if held is not None:
            later.append(ev)
            assert ev["session_id"] != held["session_id"]
        if sim.awaiting_response(ev["event_id"]):
            sim.respond(ev["event_id"], None, None)
        if len(later) > 300:
            break
    assert held is not None and sim.blocked_count() == 1 and not sim.done()
    last_ts = later[-1]["ts"]
    sim.respond(held["event_id"], "discount_10", "d1")
    sim.respond(held["event_id"], "discount_15", "d2")  # already answered: a no-op
    sim.respond("no-such-event", "none", "d3")  # unknown: a no-op
    assert sim.blocked_count() == 0
    rest = []
    while (ev := sim.next_event()) is not None:
        rest.append(ev)
        if sim.awaiting_response(ev["event_id"]):
            sim.respond(ev["event_id"], None, None)
    resumed = [e for e in rest if e["session_id"] == held["session_id"]]
    assert resumed and resumed[0]["ts"] >= last_ts  # max(planned time, last emitted)
    ts = [e["ts"] for e in later + rest]
    assert ts == sorted(ts)
    with pytest.raises(ValueError, match="unknown offer"):
        sim.respond("whatever", "discount_99", None)


def test_only_blocked_sessions_left_means_none_but_not_done() -> None:
    sim = Simulation(days=1, users=60, seed=2, closed_loop=True)
    while sim.next_event() is not None:  # never answer
        pass
    assert sim.blocked_count() > 0 and not sim.done()
    assert sim.next_event() is None
    while not sim.done():
        for event_id in sim.blocked_ids():
            sim.respond(event_id, None, None)
        while (ev := sim.next_event()) is not None:
            assert ev["type"] != "session_start"  # the horizon is over: sessions only finish
    assert sim.blocked_count() == 0


def test_open_loop_never_blocks() -> None:
    sim = Simulation(days=1, users=200, seed=3)
    while (ev := sim.next_event()) is not None:
        assert not sim.awaiting_response(ev["event_id"])
    assert sim.done() and sim.blocked_count() == 0


def test_no_offer_leaves_the_session_open_to_a_checkout_decision() -> None:
    sim, events = drive(lambda ev: None)
    stages = defaultdict(list)
    for ev in events:
        if sim.expected_profit(ev["event_id"]) is not None:
            stages[ev["session_id"]].append(ev["type"])
    assert any(s == ["add_to_cart", "checkout_start"] for s in stages.values())
    assert all(s[0] == "add_to_cart" for s in stages.values())


def test_an_offer_at_checkout_counts_and_later_points_are_not_decisions() -> None:
    def at_checkout(ev: dict) -> str | None:
        return "free_shipping" if ev["type"] == "checkout_start" else None

    sim, _ = drive(at_checkout)
    shown = sim.stats()["offers_shown"]
    assert shown == {"free_shipping": sim.stats()["events_by_type"]["checkout_start"]}
    # an offer at the first add settles the session: its checkout is no longer a decision point
    sim2, events2 = drive(lambda ev: "discount_5")
    decided = [e for e in events2 if sim2.expected_profit(e["event_id"]) is not None]
    assert {e["type"] for e in decided} == {"add_to_cart"}
    assert len(decided) == sim2.stats()["carting_sessions"] == sim2.stats()["offers_shown"]["discount_5"]


def test_common_random_numbers_one_offer_changes_only_its_session(baseline) -> None:
    _, base_events = baseline
    base = by_session(base_events)
    first_adds = [e for e in base_events if e["type"] == "add_to_cart"]
    target = first_adds[len(first_adds) // 2]["event_id"]

    _, events = drive(lambda ev: "discount_15" if ev["event_id"] == target else "none")
    other = by_session(events)
    assert other.keys() == base.keys()
    target_session = target.rsplit("-", 1)[0]
    for sid, evs in base.items():
        if sid != target_session:
            assert other[sid] == evs
    idx = [e["event_id"] for e in base[target_session]].index(target)
    assert other[target_session][: idx + 1] == base[target_session][: idx + 1]


def test_offers_lift_conversion_monotonically_session_by_session(baseline) -> None:
    sim_none, none_events = baseline
    sim_fs, fs_events = drive(lambda ev: "free_shipping")
    bought_none = {e["session_id"] for e in none_events if e["type"] == "purchase"}
    bought_fs = {e["session_id"] for e in fs_events if e["type"] == "purchase"}
    assert bought_none <= bought_fs  # same uniforms, higher probabilities
    assert len(bought_fs) > 1.3 * len(bought_none)
    assert sim_fs.stats()["conversion_rate"] > sim_none.stats()["conversion_rate"]
    sim_d15, _ = drive(lambda ev: "discount_15")
    assert sim_d15.stats()["purchases"] > sim_none.stats()["purchases"]
    assert sim_d15.stats()["reward"] < sim_none.stats()["reward"]  # more orders, less profit


def test_purchases_carry_the_decision_id_about_90_percent_of_the_time(baseline) -> None:
    _, events = baseline
    purchases = [e for e in events if e["type"] == "purchase"]
    with_id = [e for e in purchases if "decision_id" in e]
    assert 0.75 < len(with_id) / len(purchases) < 0.99
    for e in with_id:
        assert e["decision_id"].startswith("d-" + e["session_id"] + "-")


def test_closed_loop_run_reports_regret() -> None:
    def oracle(sim: Simulation) -> Callable[[dict], tuple[str, str] | None]:
        def decide(ev: dict) -> tuple[str, str] | None:
            rec = sim.truth_record(ev["event_id"])
            return (rec["best_offer"], "d") if rec is not None else None

        return decide

    sim = Simulation(days=2, users=1500, seed=9, closed_loop=True)
    best = closed_loop_run(sim, oracle(sim))
    loop = best["loop"]
    assert loop["decided"] == best["carting_sessions"] > 50
    assert loop["regret"] == pytest.approx(0.0, abs=1e-6)
    assert loop["oracle_profit"] > loop["none_profit"]

    sim = Simulation(days=2, users=1500, seed=9, closed_loop=True)
    d15 = closed_loop_run(sim, lambda ev: ("discount_15", "d"))
    assert d15["loop"]["oracle_profit"] == pytest.approx(loop["oracle_profit"])  # same decision points
    assert d15["loop"]["regret"] > 0.25 * d15["loop"]["oracle_profit"]
    assert d15["loop"]["ignored_answers"] > 0  # it answered events that were not decision points
    days = d15["loop"]["daily"]
    assert [d["day"] for d in days] == [0, 1]
    assert sum(d["chosen_profit"] for d in days) == pytest.approx(d15["loop"]["chosen_profit"])
    assert sum(d["fixed_profit"]["none"] for d in days) == pytest.approx(d15["loop"]["none_profit"])
    assert [d["fixed_profit"]["discount_15"] for d in days] == pytest.approx([d["chosen_profit"] for d in days])
    with pytest.raises(ValueError):
        closed_loop_run(Simulation(days=1, users=10), lambda ev: None)
