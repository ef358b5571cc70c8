"""The linear policies learn who responds to an offer per offer *attribute*, so what one discount teaches
carries to the other discount levels, and a snapshot only restores into the same layout."""

import numpy as np
import pytest

from bandits.linear_thompson import LinearThompson
from bandits.offers import Catalogue
from stream.engine.processor import offer_terms

TERMS = offer_terms(Catalogue().offers)


def trained(lift_by: tuple[str, ...]) -> LinearThompson:
    """Shown only ``none`` and ``discount_10``: shoppers from ads buy far more often with the discount."""
    policy = LinearThompson(context=("from_ads",), lift_context=("from_ads",), lift_by=lift_by, value_key=None)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        ads = float(rng.random() < 0.5)
        offer = "discount_10" if rng.random() < 0.5 else "none"
        p = 0.2 + (0.4 * ads if offer == "discount_10" else 0.0)
        policy.update({"from_ads": ads} | TERMS, offer, float(rng.random() < p), 0.5)
    return policy


def lift_of_discount_5(policy: LinearThompson, ads: float) -> float:
    means, _, _ = policy.predict({"from_ads": ads} | TERMS, ["none", "discount_5"])
    return float(means[1] - means[0])


def test_what_discount_10_taught_carries_to_discount_5_in_proportion():
    policy = trained(("offer_discount", "offer_flat"))
    # how much more discount_5 (never shown) lifts shoppers from ads than the others: half what discount_10
    # does (0.4), as the lift is linear in the share
    assert lift_of_discount_5(policy, 1.0) - lift_of_discount_5(policy, 0.0) == pytest.approx(0.2, abs=0.04)


def test_a_snapshot_restores_only_into_the_same_lift_attributes():
    policy = trained(("offer_discount", "offer_flat"))
    twin = LinearThompson(context=("from_ads",), lift_context=("from_ads",), value_key=None)
    twin.restore(policy.snapshot())
    ctx = {"from_ads": 1.0} | TERMS
    assert np.allclose(twin.predict(ctx, ["none", "discount_5"])[0], policy.predict(ctx, ["none", "discount_5"])[0])
    other = LinearThompson(context=("from_ads",), lift_context=("from_ads",), lift_by=(), value_key=None)
    with pytest.raises(ValueError, match="lift attributes"):
        other.restore(policy.snapshot())
