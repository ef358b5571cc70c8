"""Scenarios: the registry, and each drift scenario moves the quantity it claims to move."""

from __future__ import annotations

from collections import Counter

import pytest

from stream.simulator import SCENARIOS, Simulation, get_scenario
from stream.simulator.scenarios import sale_week

DAY_MS = 86_400_000


def test_registry_and_unknown_names() -> None:
    assert set(SCENARIOS) == {"stationary", "abrupt", "seasonal", "gradual", "clear_winner"}
    assert get_scenario("abrupt") is SCENARIOS["abrupt"]
    with pytest.raises(ValueError, match=r"stationary.*abrupt.*seasonal.*gradual.*clear_winner"):
        get_scenario("nope")
    with pytest.raises(ValueError):
        Simulation(scenario="nope")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_traffic_stays_under_the_thinning_bound(name: str) -> None:
    scenario = SCENARIOS[name]
    for horizon in (7.0, 14.0, 365.0):
        for i in range(400):
            day = horizon * i / 400
            assert scenario.conditions_at(day, horizon, (day + 0.3) % 7).traffic <= scenario.max_traffic


def by_day(name: str, users: int, days: int, seed: int) -> tuple[list[Counter[str]], list[list[float]]]:
    """Per day: event counts by type, and the prices of product views."""
    sim = Simulation(scenario=name, days=days, users=users, seed=seed)
    counts: list[Counter[str]] = [Counter() for _ in range(days + 1)]
    prices: list[list[float]] = [[] for _ in range(days + 1)]
    while (ev := sim.next_event()) is not None:
        d = (ev["ts"] - sim.start_ms) // DAY_MS
        counts[d][ev["type"]] += 1
        if ev["type"] == "product_view":
            prices[d].append(ev["price"])
    return counts, prices


def conversion(counts: list[Counter[str]]) -> float:
    total = sum(counts, Counter())
    return total["purchase"] / total["session_start"]


def test_abrupt_change_halfway_cuts_conversion_and_raises_shipping_value() -> None:
    counts, _ = by_day("abrupt", users=3000, days=8, seed=1)
    before, after = conversion(counts[:4]), conversion(counts[4:])
    assert after < 0.8 * before
    scenario = get_scenario("abrupt")
    assert scenario.conditions_at(3.9, 8, 0).ship_sens_mult == 1.0
    assert scenario.conditions_at(4.0, 8, 0).ship_sens_mult > 2.0


def test_seasonal_sale_week_brings_traffic_and_conversion() -> None:
    assert sale_week(14) == (7.0, 14.0)
    assert sale_week(365)[0] == pytest.approx(310.25)
    counts, _ = by_day("seasonal", users=2000, days=14, seed=2)
    sessions = [c["session_start"] for c in counts]
    assert sum(sessions[7:14]) > 1.35 * sum(sessions[:7])
    assert conversion(counts[7:14]) > 1.2 * conversion(counts[:7])
    scenario = get_scenario("seasonal")
    saturday, wednesday = scenario.conditions_at(5.5, 14, 5.5), scenario.conditions_at(2.0, 14, 2.0)
    assert saturday.traffic > wednesday.traffic
    assert scenario.conditions_at(8.0, 14, 1.0).price_sens_mult > 1.5


def test_gradual_prices_rise_and_conversion_drifts_down() -> None:
    counts, prices = by_day("gradual", users=3000, days=10, seed=3)
    early, late = prices[0] + prices[1], prices[8] + prices[9]
    assert sum(late) / len(late) > 1.15 * sum(early) / len(early)
    assert conversion(counts[6:10]) < 0.85 * conversion(counts[:4])


def test_stationary_does_not_drift() -> None:
    scenario = get_scenario("stationary")
    assert scenario.conditions_at(0.0, 30, 0) == scenario.conditions_at(29.0, 30, 6)
