"""Scenarios: how the shop's conditions move over the simulated horizon (drift), and nothing else.

A scenario maps a moment (days since the start, the horizon in days, and the weekday) to ``Conditions``:
multipliers and logit shifts that the session model applies on top of each shopper's latent traits.
Shoppers' traits never change; only the conditions around them do, so drift is a property of the shop and
of the market, and the oracle (``oracle.py``) sees it exactly.

``stationary``
    Nothing moves except the daily traffic cycle (every scenario has it). The funnel is calibrated here.
``abrupt``
    Halfway through, a competitor launches free shipping: checkout and purchase drop by 0.5 logit and
    shoppers' sensitivity to shipping costs jumps ×2.5, so ``free_shipping`` gains value overnight.
``seasonal``
    A weekly cycle (weekend traffic +15%, slightly higher intent) plus one sale week, like November:
    traffic ×1.6, carting +0.3 logit, checkout/purchase +0.35 logit and discount sensitivity ×1.8. The sale
    week starts at 85% of the horizon (clamped so that it fits; it covers the whole horizon when that is a
    week or less): day 310 of a year that starts on 5 January is 11 November.
``gradual``
    Prices rise linearly by 30% over the horizon while carting drifts down by 0.3 logit, checkout and
    purchase by 0.5 logit, and discount sensitivity grows by half.
``clear_winner``
    A premium shop (prices ×3) whose shoppers care about shipping above all: free shipping lifts checkout
    and purchase by 2.8 logits for everyone (on top of their own shipping sensitivity), discounts barely
    register (sensitivity ×0.15), and baseline buying is 1.4 logits lower. ``free_shipping`` is the most
    profitable offer at about 97% of decision points (not on orders under ~$20, where the fee eats the
    margin), which a test uses to check that a bandit converges to it. Its baseline conversion is far
    below the calibrated range: it is a test rig, not a shop.

>>> get_scenario("abrupt").conditions_at(2.0, 7.0, 0.0).buy_shift
0.0
>>> get_scenario("abrupt").conditions_at(5.0, 7.0, 0.0).buy_shift
-0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the shop looks like at one moment; neutral values leave the calibrated model unchanged."""

    traffic: float = 1.0  # multiplier on every shopper's session arrival intensity
    cart_shift: float = 0.0  # logit added to the add-to-cart propensity
    buy_shift: float = 0.0  # logit added to checkout and to purchase
    price_sens_mult: float = 1.0  # multiplier on shoppers' response to discounts
    ship_sens_mult: float = 1.0  # multiplier on shoppers' response to a waived shipping fee
    ship_lift: float = 0.0  # extra logit lift of a waived shipping fee, for every shopper
    price_factor: float = 1.0  # multiplier on catalogue prices


NEUTRAL = Conditions()

# Traffic through the day (UTC hours): a trough before dawn, a peak at 20:00.
DAILY_AMPLITUDE = 0.45


def daily_cycle(hour: float) -> float:
    """Relative session intensity at ``hour`` (0-24); averages 1 over a day."""
    return 1.0 + DAILY_AMPLITUDE * math.cos(2.0 * math.pi * (hour - 20.0) / 24.0)


ConditionsFn = Callable[[float, float, float], Conditions]


@dataclass(frozen=True)
class Scenario:
    """A named drift pattern: ``conditions_at(day, horizon_days, weekday)`` gives the conditions.

    ``day`` counts days since the start (float), ``weekday`` is 0 on Monday (float, 0-7). ``max_traffic``
    bounds ``conditions_at(...).traffic`` over the horizon; the simulator thins session arrivals with it.
    """

    name: str
    description: str
    conditions: ConditionsFn
    max_traffic: float = 1.0

    def conditions_at(self, day: float, horizon_days: float, weekday: float) -> Conditions:
        return self.conditions(day, horizon_days, weekday)


def _stationary(day: float, horizon: float, weekday: float) -> Conditions:
    return NEUTRAL


ABRUPT_AFTER = Conditions(buy_shift=-0.5, ship_sens_mult=2.5)


def _abrupt(day: float, horizon: float, weekday: float) -> Conditions:
    return ABRUPT_AFTER if day >= horizon / 2.0 else NEUTRAL


SALE_WEEK_DAYS = 7.0
SALE_WEEK_AT = 0.85


def sale_week(horizon: float) -> tuple[float, float]:
    """First and last day (exclusive) of the seasonal scenario's sale week."""
    start = max(0.0, min(horizon - SALE_WEEK_DAYS, SALE_WEEK_AT * horizon))
    return start, start + SALE_WEEK_DAYS


def _seasonal(day: float, horizon: float, weekday: float) -> Conditions:
    weekly = math.cos(2.0 * math.pi * (weekday - 5.5) / 7.0)  # peaks between Saturday and Sunday
    first, last = sale_week(horizon)
    if first <= day < last:
        return Conditions(
            traffic=1.6 * (1.0 + 0.15 * weekly),
            cart_shift=0.3,
            buy_shift=0.35 + 0.08 * weekly,
            price_sens_mult=1.8,
        )
    return Conditions(traffic=1.0 + 0.15 * weekly, buy_shift=0.08 * weekly)


def _gradual(day: float, horizon: float, weekday: float) -> Conditions:
    f = min(max(day / horizon, 0.0), 1.0)
    return Conditions(
        cart_shift=-0.3 * f, buy_shift=-0.5 * f, price_sens_mult=1.0 + 0.5 * f, price_factor=1.0 + 0.3 * f
    )


CLEAR_WINNER = Conditions(buy_shift=-1.4, price_sens_mult=0.15, ship_lift=2.8, price_factor=3.0)


def _clear_winner(day: float, horizon: float, weekday: float) -> Conditions:
    return CLEAR_WINNER


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("stationary", "calibrated funnel, no drift", _stationary),
        Scenario("abrupt", "competitor launches free shipping halfway: conversion drops, shipping matters", _abrupt),
        Scenario("seasonal", "weekly cycle plus a sale week at 85% of the horizon", _seasonal, 1.6 * 1.15),
        Scenario("gradual", "prices rise 30% over the horizon, conversion drifts down", _gradual),
        Scenario("clear_winner", "free shipping is the best offer for nearly every shopper", _clear_winner),
    )
}


def get_scenario(name: str | Scenario) -> Scenario:
    """The scenario called ``name`` (a ``Scenario`` passes through); ValueError names the known ones."""
    if isinstance(name, Scenario):
        return name
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
