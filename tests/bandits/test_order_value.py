"""The order expected from a purchase under each offer: learned per offer, shrunk to the pooled fit, floored,
forgetting, and the processor's values at stake computed on it."""

import math

import numpy as np
import orjson
import pytest
from factories import MINUTE, T0, event, processor, records

from bandits.order_value import OrderValueModel


def shop(model: OrderValueModel, n: int, rng: np.random.Generator, ship_uplift: float = 1.4) -> None:
    """Purchases under ``none`` (order = cart + noise) and ``free_shipping`` (order = uplift × cart + noise)."""
    for _ in range(n):
        cart = float(rng.lognormal(3.8, 0.6))
        offer = "free_shipping" if rng.random() < 0.5 else "none"
        factor = ship_uplift if offer == "free_shipping" else 1.0
        model.learn(offer, cart, factor * cart * float(rng.lognormal(0.0, 0.1)))


def test_each_offer_learns_its_own_order_from_the_cart():
    model = OrderValueModel(half_life=None)
    shop(model, 4000, np.random.default_rng(0))
    for cart in (20.0, 45.0, 90.0):
        assert model.expected("none", cart) == pytest.approx(cart, rel=0.04)
        assert model.expected("free_shipping", cart) == pytest.approx(1.4 * cart, rel=0.04)


def test_before_enough_purchases_the_order_is_the_cart_and_an_unseen_offer_takes_the_pooled_fit():
    model = OrderValueModel(min_purchases=30, half_life=None)
    rng = np.random.default_rng(1)
    shop(model, 29, rng)
    assert model.expected("free_shipping", 50.0) == 50.0
    shop(model, 2000, rng)
    pooled = model.expected("discount_5", 50.0)  # never bought under: between the two offers' orders
    assert model.expected("none", 50.0) < pooled < model.expected("free_shipping", 50.0)


def test_a_rarely_bought_offer_is_shrunk_towards_the_pooled_fit():
    model = OrderValueModel(shrink=50.0, half_life=None)
    rng = np.random.default_rng(2)
    for _ in range(3000):
        cart = float(rng.lognormal(3.8, 0.6))
        model.learn("none", cart, cart)
    for cart in (30.0, 50.0, 70.0, 40.0, 60.0):  # five purchases at twice the cart
        model.learn("discount_10", cart, 2.0 * cart)
    own_weight = 5 / (5 + 50)
    assert model.expected("discount_10", 50.0) == pytest.approx(50.0 * (1 + own_weight), rel=0.05)


def test_the_order_is_never_below_the_floor_share_of_the_cart():
    model = OrderValueModel(floor=0.5, min_purchases=1, half_life=None)
    for cart in np.linspace(10.0, 60.0, 200):
        model.learn("none", float(cart), float(max(1.0, 120.0 - 2.0 * cart)))  # falls with the cart
    assert model.expected("none", 400.0) == 200.0


def test_after_a_shift_the_forgetting_model_follows_and_the_remembering_one_lags():
    forgetting, remembering = OrderValueModel(half_life=1000.0), OrderValueModel(half_life=None)
    for model in (forgetting, remembering):
        rng = np.random.default_rng(3)
        shop(model, 20_000, rng, ship_uplift=1.0)
        shop(model, 5000, rng, ship_uplift=1.5)  # free shipping now draws bigger orders
    assert forgetting.expected("free_shipping", 50.0) == pytest.approx(75.0, rel=0.04)
    assert remembering.expected("free_shipping", 50.0) < 60.0


def test_a_snapshot_restores_through_json_to_the_same_expectations():
    model = OrderValueModel()
    shop(model, 500, np.random.default_rng(4))
    twin = OrderValueModel()
    twin.restore(orjson.loads(orjson.dumps(model.snapshot())))
    for offer in ("none", "free_shipping", "discount_15"):
        assert twin.expected(offer, 37.5) == model.expected(offer, 37.5)
    model.learn("none", 20.0, 25.0)
    twin.learn("none", 20.0, 25.0)
    assert twin.snapshot() == model.snapshot()


@pytest.mark.parametrize(("cart", "order"), [(0.0, 10.0), (10.0, 0.0), (math.nan, 10.0), (10.0, math.inf)])
def test_a_purchase_that_is_not_a_positive_cart_and_order_is_refused(cart, order):
    with pytest.raises(ValueError, match="positive"):
        OrderValueModel().learn("none", cart, order)


def shopping(n: int) -> list[dict]:
    """``n`` sessions: an item added to the cart at 40, then a purchase of 60 (the order outgrows the cart)."""
    out = []
    for i in range(n):
        ts = T0 + 10 * i * MINUTE
        s, u = f"s{i}", f"u{i}"
        out += [
            event(f"a{i}", "add_to_cart", ts=ts, session=s, user=u, price=40.0),
            event(f"p{i}", "purchase", ts=ts + MINUTE, session=s, user=u, revenue=60.0),
        ]
    return out


def decisions(core, evs) -> list[dict]:
    return [o.body for r in records(evs) for o in core.process(r) if o.kind.name == "DECISION"]


def test_the_processor_values_offers_on_the_learned_order_and_checkpoints_it():
    core = processor(seed=1)
    decided = decisions(core, shopping(80))
    first, last = decided[0]["features"], decided[-1]["features"]
    assert first["cart_value"] == last["cart_value"] == 40.0
    assert first["margin_value:none"] == pytest.approx(0.3 * 40.0)  # no purchases yet: the cart
    assert last["margin_value:none"] == pytest.approx(0.3 * 60.0, rel=0.02)  # learned: orders are 1.5 × cart
    assert core.order_values is not None and core.order_values.purchases == 80

    twin = processor(seed=1)
    twin.restore(orjson.loads(orjson.dumps(core.snapshot())))
    assert twin.order_values is not None
    assert twin.order_values.expected("none", 40.0) == core.order_values.expected("none", 40.0)


def test_valued_on_the_cart_the_processor_learns_no_orders():
    core = processor(seed=1, processing={"value_at_stake": "cart"})
    decided = decisions(core, shopping(80))
    assert core.order_values is None and "order_values" not in core.snapshot()
    assert decided[-1]["features"]["margin_value:none"] == pytest.approx(0.3 * 40.0)
