"""The oracle: offers pay differently for different shoppers, discount_15 for all is a bad idea, and the
expected values agree with what the simulation realises."""

from __future__ import annotations

from collections import Counter

import pytest

from stream.simulator import Simulation


def open_loop(scenario: str, users: int, days: float, seed: int) -> tuple[Simulation, list[dict], list[dict]]:
    """Run to the end; returns the sim, every event, and the truth record of every decision point."""
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed)
    events, truth = [], []
    while (ev := sim.next_event()) is not None:
        events.append(ev)
        rec = sim.truth_record(ev["event_id"])
        if rec is not None:
            truth.append(rec)
    return sim, events, truth


@pytest.fixture(scope="module")
def stationary() -> tuple[Simulation, list[dict], list[dict]]:
    return open_loop("stationary", users=2500, days=7, seed=21)


def test_truth_only_for_decision_points(stationary) -> None:
    sim, events, truth = stationary
    assert {r["type"] for r in truth} == {"add_to_cart", "checkout_start"}
    assert len(truth) == sim.stats()["decision_points"]
    assert sum(r["type"] == "add_to_cart" for r in truth) == sim.stats()["carting_sessions"]
    page_view = next(e for e in events if e["type"] == "page_view")
    assert sim.expected_profit(page_view["event_id"]) is None
    assert sim.truth_record(page_view["event_id"]) is None
    rec = truth[0]
    assert set(rec) >= {"event_id", "user_id", "session_id", "segment", "expected_profit", "best_offer"}
    assert set(rec["expected_profit"]) == {
        "none",
        "discount_5",
        "discount_10",
        "discount_15",
        "free_shipping",
    }
    assert rec["oracle_profit"] == max(rec["expected_profit"].values())
    assert rec["expected_profit"][rec["best_offer"]] == rec["oracle_profit"]
    assert sim.expected_profit(rec["event_id"]) == rec["expected_profit"]


def test_discount_15_for_everyone_is_clearly_unprofitable(stationary) -> None:
    _, _, truth = stationary
    first = [r for r in truth if r["type"] == "add_to_cart"]
    totals: Counter[str] = Counter()
    for r in first:
        totals.update(r["expected_profit"])
    oracle = sum(r["oracle_profit"] for r in first)
    best_fixed = max(totals.values())
    assert totals["discount_15"] < 0.85 * totals["none"]
    assert totals["discount_15"] < 0.80 * best_fixed
    assert totals["discount_15"] < 0.70 * oracle
    assert oracle > 1.08 * best_fixed  # knowing the shopper is worth something


def test_the_best_offer_differs_across_shoppers(stationary) -> None:
    _, _, truth = stationary
    first = [r for r in truth if r["type"] == "add_to_cart"]
    share = {k: v / len(first) for k, v in Counter(r["best_offer"] for r in first).items()}
    assert sum(v >= 0.10 for v in share.values()) >= 3
    assert share.get("discount_15", 0.0) < 0.05
    by_segment: dict[str, Counter[str]] = {}
    for r in first:
        by_segment.setdefault(r["segment"], Counter())[r["best_offer"]] += 1
    favourites = {seg: c.most_common(1)[0][0] for seg, c in by_segment.items()}
    assert favourites["loyal"] == "none"
    assert favourites["bargain_hunter"].startswith("discount")


def test_expected_reward_under_none_matches_the_realised_reward(stationary) -> None:
    sim, _, truth = stationary
    expected = sum(r["expected_profit"]["none"] for r in truth if r["type"] == "add_to_cart")
    realised = sim.stats()["reward"]
    assert realised == pytest.approx(expected, rel=0.15)


def test_clear_winner_is_free_shipping_almost_everywhere() -> None:
    _, _, truth = open_loop("clear_winner", users=1500, days=4, seed=4)
    assert len(truth) > 200
    best = Counter(r["best_offer"] for r in truth)
    assert best["free_shipping"] > 0.90 * len(truth)
    totals: Counter[str] = Counter()
    for r in truth:
        totals.update(r["expected_profit"])
    runner_up = max(v for k, v in totals.items() if k != "free_shipping")
    assert totals["free_shipping"] > 1.5 * runner_up
