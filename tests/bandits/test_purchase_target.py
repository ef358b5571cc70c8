"""Linear policies fitted to whether the shopper bought (``target="purchase"``) rank offers by P(buy) × value at
stake, learn a purchase from ``converted`` (or a non-zero reward when a log says nothing more), and keep their
target in the snapshot's layout."""

import numpy as np
import pytest
from pydantic import ValidationError

from bandits.linear_thompson import LinearThompson
from bandits.offers import Catalogue
from bandits.settings import PolicySettings
from stream.engine.processor import offer_terms

TERMS = offer_terms(Catalogue().offers)
BUY = {"none": 0.10, "free_shipping": 0.30}  # shoppers from ads: free shipping triples who buys


def context(values: dict[str, float]) -> dict[str, float]:
    return {"from_ads": 1.0} | TERMS | {f"margin_value:{o}": v for o, v in values.items()}


def policy(target: str) -> LinearThompson:
    return LinearThompson(context=("from_ads",), lift_context=("from_ads",), target=target, forget_half_life=None)


def test_fitted_to_purchases_it_predicts_the_purchase_probability_whatever_the_value_at_stake():
    ts = policy("purchase")
    rng = np.random.default_rng(0)
    for _ in range(4000):
        values = {"none": float(rng.uniform(5, 100)), "free_shipping": float(rng.uniform(5, 100))}
        offer = "none" if rng.random() < 0.5 else "free_shipping"
        bought = bool(rng.random() < BUY[offer])
        ts.update(context(values), offer, values[offer] if bought else 0.0, 0.5, converted=bought)
    means, _, _ = ts.predict(context({"none": 10.0, "free_shipping": 10.0}), ["none", "free_shipping"])
    assert means == pytest.approx([0.10, 0.30], abs=0.02)
    # and ranks by P(buy) × value: free shipping wins unless none keeps three times as much
    choice = ts.choose(context({"none": 40.0, "free_shipping": 10.0}), ["none", "free_shipping"], rng)
    assert choice.scores["none"] == pytest.approx(4.0, abs=0.8)
    assert choice.scores["free_shipping"] == pytest.approx(3.0, abs=0.6)


@pytest.mark.parametrize(("reward", "converted", "learned"), [(0.0, True, 1.0), (5.0, False, 0.0), (5.0, None, 1.0)])
def test_converted_says_whether_it_bought_and_without_it_a_non_zero_reward_does(reward, converted, learned):
    ts = policy("purchase")
    for _ in range(500):
        ts.update(context({"none": 10.0}), "none", reward, 1.0, converted=converted)
    means, _, _ = ts.predict(context({"none": 10.0}), ["none"])
    assert means[0] == pytest.approx(learned, abs=0.02)


def test_a_purchase_target_needs_values_at_stake_to_rank_by():
    with pytest.raises(ValueError, match="value_key"):
        LinearThompson(context=("from_ads",), value_key=None, target="purchase")
    with pytest.raises(ValidationError, match="value_key"):
        PolicySettings(value_key=None)
    assert PolicySettings(value_key=None, target="profit").target == "profit"
    with pytest.raises(ValueError, match="target"):
        LinearThompson(context=("from_ads",), target="clicks")


def test_a_snapshot_restores_only_into_the_same_target():
    ts = policy("purchase")
    ts.update(context({"none": 10.0}), "none", 3.0, 1.0, converted=True)
    with pytest.raises(ValueError, match="target"):
        policy("profit").restore(ts.snapshot())
    twin = policy("purchase")
    twin.restore(ts.snapshot())
    assert twin.snapshot() == ts.snapshot()
