"""The price-sensitivity learner recovers who responds to which offer from IPW-weighted logs of a uniformly random
policy."""

from __future__ import annotations

import math
import random

import pytest

from models.learners.price_sensitivity import PriceSensitivityLearner

OFFERS = {  # name: (offer_share, offer_flat)
    "none": (0.0, 0.0),
    "discount_5": (0.05, 0.0),
    "discount_10": (0.10, 0.0),
    "discount_15": (0.15, 0.0),
    "free_shipping": (0.0, 1.0),
}
GROUPS = ("bargain", "regular")


def context(rng: random.Random, group: str) -> dict[str, float]:
    """Bargain hunters look at cheaper products and search more; the rest is the same for both segments."""
    bargain = group == "bargain"
    return {
        "avg_price_viewed": round(rng.lognormvariate(2.5 if bargain else 3.8, 0.3), 2),
        "searches": float(rng.randint(2, 6) if bargain else rng.randint(0, 2)),
        "mobile": float(rng.random() < 0.7),
        "cart_value": round(rng.lognormvariate(3.5, 0.6), 2),
        "hour_of_day": float(rng.randrange(24)),
    }


def logit_lift(group: str, share: float, flat: float) -> float:
    """Bargain hunters answer discounts (+0.8 logit per 10 %); free shipping helps both a little (+0.3)."""
    return (8.0 * share if group == "bargain" else 0.0) + 0.3 * flat


def logged(n: int, seed: int = 0):
    """Sessions logged under a uniformly random policy over the five offers (propensity 1/5, weight 5)."""
    rng = random.Random(seed)
    for _ in range(n):
        group = rng.choice(GROUPS)
        share, flat = OFFERS[rng.choice(list(OFFERS))]
        y = rng.random() < sigmoid(-1.0 + logit_lift(group, share, flat))
        yield {**context(rng, group), "offer_share": share, "offer_flat": flat}, y, 1.0 / 0.2


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def true_lift(group: str, share: float, flat: float) -> float:
    return sigmoid(-1.0 + logit_lift(group, share, flat)) - sigmoid(-1.0)


@pytest.fixture(scope="module")
def model() -> PriceSensitivityLearner:
    learner = PriceSensitivityLearner(seed=0)
    for x, y, w in logged(20_000):
        learner.learn_one(x, y, weight=w)
    return learner


def mean_lift(model: PriceSensitivityLearner, group: str, share: float, flat: float) -> float:
    rng = random.Random(1)
    xs = [context(rng, group) for _ in range(300)]
    return sum(model.predict_lift(x, share, flat) for x in xs) / len(xs)


def test_the_discount_responsive_segment_gets_the_higher_lift(model):
    rng = random.Random(2)
    lifts = {g: sum(model.predict_one(context(rng, g)) for _ in range(300)) / 300 for g in GROUPS}
    # Tolerances hold for 7 of 8 seeds of the logged data: constant-rate SGD keeps some noise, by design.
    assert lifts["bargain"] > lifts["regular"] + 0.08
    assert lifts["bargain"] == pytest.approx(true_lift("bargain", 0.10, 0.0), abs=0.07)  # ≈ 0.18
    assert lifts["regular"] == pytest.approx(0.0, abs=0.05)


def test_a_bigger_discount_lifts_the_bargain_hunters_more(model):
    lifts = [mean_lift(model, "bargain", share, 0.0) for share in (0.05, 0.10, 0.15)]
    assert 0.0 < lifts[0] < lifts[1] < lifts[2]
    assert model.predict_lift(context(random.Random(3), "bargain"), 0.0, 0.0) == 0.0


def test_free_shipping_lifts_both_segments_alike(model):
    shipping = {g: mean_lift(model, g, 0.0, 1.0) for g in GROUPS}
    for g in GROUPS:
        assert 0.0 < shipping[g] == pytest.approx(true_lift(g, 0.0, 1.0), abs=0.06)  # ≈ 0.06


def test_offer_keys_in_x_do_not_change_the_prediction(model):
    x = context(random.Random(4), "bargain")
    assert model.predict_one({**x, "offer_share": 0.15, "offer_flat": 1.0}) == model.predict_one(x)
    assert model.predict_purchase(x, 0.10) - model.predict_purchase(x) == pytest.approx(model.predict_one(x))


def test_no_lift_before_learning():
    assert PriceSensitivityLearner().predict_one({"cart_value": 40.0}) == 0.0
    assert PriceSensitivityLearner().predict_purchase({"cart_value": 40.0}) == pytest.approx(0.5)


def test_only_the_ratios_of_the_capped_weights_matter():
    """Weights are capped at max_weight, then self-normalised: scaling them all changes nothing."""
    data = list(logged(500, seed=5))
    a, b, c = PriceSensitivityLearner(), PriceSensitivityLearner(), PriceSensitivityLearner()
    for x, y, _ in data:
        a.learn_one(x, y, weight=1.0)
        b.learn_one(x, y, weight=5.0)
        c.learn_one(x, y, weight=1e9)  # capped to 20, then normalised to 1
    xs = [x for x, _, _ in data[:50]]
    assert [a.predict_one(x) for x in xs] == [b.predict_one(x) for x in xs] == [c.predict_one(x) for x in xs]


def test_needs_a_label():
    with pytest.raises(ValueError):
        PriceSensitivityLearner().learn_one({"cart_value": 40.0}, None)
