"""The default scenario's funnel lands inside the published ranges (SIMULATOR.md) over a simulated week."""

from __future__ import annotations

import pytest

from stream.simulator import Simulation


@pytest.fixture(scope="module")
def week() -> dict:
    sim = Simulation(scenario="stationary", days=7, users=3000, seed=7)
    while sim.next_event() is not None:
        pass
    assert sim.done()
    return sim.stats()


def test_add_to_cart_rate_is_6_to_10_percent(week: dict) -> None:
    assert 0.06 <= week["add_to_cart_rate"] <= 0.10


def test_conversion_is_2_to_3_percent(week: dict) -> None:
    assert 0.02 <= week["conversion_rate"] <= 0.03


def test_cart_abandonment_is_about_70_percent(week: dict) -> None:
    assert 0.60 <= week["cart_abandonment"] <= 0.80


def test_mobile_share_is_60_to_75_percent_and_converts_below_desktop(week: dict) -> None:
    assert 0.60 <= week["mobile_share"] <= 0.75
    by_device = week["conversion_by_device"]
    assert by_device["mobile"] < by_device["desktop"]


def test_enough_sessions_for_the_rates_to_mean_something(week: dict) -> None:
    assert week["sessions"] > 8000
    assert week["purchases"] > 150
    assert week["events"] > 5 * week["sessions"]
