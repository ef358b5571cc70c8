"""The oracle: the expected reward of every offer at a decision point, from the shopper's latent state.

At a decision point the simulator knows what the shopper will put in the cart (the cart's path is drawn at
session start and does not depend on the offer), the checkout and purchase logits, and the shopper's
sensitivities. The expected reward of offer ``o`` is

    P(purchase | o) × profit(o, final order value, margin)

where ``profit`` is ``margin × value − cost(o, value)`` from ``bandits.offers``: the expectation is over the
checkout and purchase coin flips only. The best offer and its value are what a perfectly informed policy
would earn there; summing ``expected[chosen] − max(expected)`` over decisions gives a policy's regret
without the noise of realised purchases.

Records are kept for a bounded number of recent decision points (``OracleMemory``): ask soon after the event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bandits.offers import Offer, profit
from stream.simulator.behaviour import offer_lift, purchase_probability
from stream.simulator.scenarios import Conditions


@dataclass(frozen=True, slots=True)
class DecisionState:
    """What determines the outcome of a session from one decision point on."""

    stage: str
    checkout_logit: float
    purchase_logit: float
    price_sens: float
    ship_sens: float
    value: float
    conditions: Conditions

    def purchase_probability(self, offer: Offer | None) -> float:
        lift = offer_lift(offer, self.price_sens, self.ship_sens, self.value, self.conditions)
        return purchase_probability(self.stage, self.checkout_logit, self.purchase_logit, lift)


def expected_profits(state: DecisionState, offers: Iterable[Offer], margin: float) -> dict[str, float]:
    """Expected reward of each offer (by name) from this decision point; rounded to 1e-6."""
    return {o.name: round(state.purchase_probability(o) * profit(o, state.value, margin), 6) for o in offers}


def best_offer(expected: dict[str, float]) -> str:
    """The offer with the highest expected reward (the first listed wins ties)."""
    return max(expected, key=lambda name: expected[name])


def truth_record(event: dict[str, Any], segment: str, expected: dict[str, float]) -> dict[str, Any]:
    """The ``--truth`` line for a decision-eligible event."""
    best = best_offer(expected)
    return {
        "event_id": event["event_id"],
        "ts": event["ts"],
        "type": event["type"],
        "user_id": event["user_id"],
        "session_id": event["session_id"],
        "segment": segment,
        "cart_value": event.get("cart_value"),
        "expected_profit": expected,
        "best_offer": best,
        "oracle_profit": expected[best],
    }


class OracleMemory:
    """Truth records of the most recent ``capacity`` decision points, by event id."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def put(self, record: dict[str, Any]) -> None:
        self._records[record["event_id"]] = record
        if len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def get(self, event_id: str) -> dict[str, Any] | None:
        return self._records.get(event_id)

    def __len__(self) -> int:
        return len(self._records)
