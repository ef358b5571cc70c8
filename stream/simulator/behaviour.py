"""How a shopper responds: the logits behind carting, checkout and purchase, and the lift an offer gives.

Calibration (default scenario, no offer): a session, whose intent is its shopper's plus a mood of the day
(see :mod:`.sessions`), adds to cart with probability ``sigmoid(BASE_CART + intent + device + cart_shift)``
(about 8% of sessions); a carting session goes to checkout with ``sigmoid(BASE_CHECKOUT + 0.9 intent + device
+ buy_shift)`` and a checkout becomes a purchase with ``sigmoid(BASE_PURCHASE + 0.9 intent + buy_shift)``:
about a third of carts become orders (cart abandonment 65-67%) and 2.7-2.9% of sessions convert (4 seeds ×
3,000 users × 7 days). Mobile sessions cart and check out less than desktop ones (about 2.2% against 4%
conversion).

An offer adds the same logit lift to checkout and to purchase (or only to purchase when it is first shown
at checkout, because the checkout has already happened):

* a discount of share ``d`` lifts by ``price_sens × price_sens_mult × (d / 0.10) ** 0.7``
  (diminishing returns: 15% off is not three times 5% off);
* a flat-fee offer (free shipping) lifts by ``ship_sens × ship_sens_mult × min(r, 3) ** 0.6 + ship_lift``
  where ``r = fee / (0.15 × order value)``: a 5.99 fee on a 40.00 order is ``r = 1``, on a 20.00 order
  ``r = 2``, on a 120.00 order ``r = 1/3``. A flat fee weighs more on a small order.

Offers cost margin (``bandits.offers.profit``), so which offer pays depends on the shopper: ``none`` for
loyal, insensitive shoppers, a small discount for bargain hunters, free shipping for convenience shoppers
with mid-sized carts, and ``discount_15`` almost never.

>>> round(sigmoid(0.0), 3)
0.5
"""

from __future__ import annotations

import math

from bandits.offers import Offer
from stream.simulator.scenarios import Conditions

BASE_CART = -2.7
BASE_CHECKOUT = -0.85
BASE_PURCHASE = 0.5
INTENT_BUY_WEIGHT = 0.9

# (cart logit, checkout logit) by device: mobile converts below desktop.
DEVICE_EFFECTS: dict[str, tuple[float, float]] = {
    "mobile": (-0.1, -0.2),
    "desktop": (0.2, 0.35),
    "tablet": (0.0, 0.0),
}

DISCOUNT_REFERENCE = 0.10
DISCOUNT_EXPONENT = 0.7
FEE_REFERENCE_SHARE = 0.15
FEE_RATIO_CAP = 3.0
FEE_EXPONENT = 0.6

CART = "cart"  # decision at the first add-to-cart: the offer moves checkout and purchase
CHECKOUT = "checkout"  # decision at checkout_start: the offer moves purchase only


def sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def cart_logit(intent: float, device: str, cond: Conditions) -> float:
    return BASE_CART + intent + DEVICE_EFFECTS[device][0] + cond.cart_shift


def buy_logits(intent: float, device: str, cond: Conditions) -> tuple[float, float]:
    """(checkout logit, purchase logit) of a carting session before any offer."""
    shift = INTENT_BUY_WEIGHT * intent + cond.buy_shift
    return BASE_CHECKOUT + shift + DEVICE_EFFECTS[device][1], BASE_PURCHASE + shift


def offer_lift(offer: Offer | None, price_sens: float, ship_sens: float, value: float, cond: Conditions) -> float:
    """Logit lift of ``offer`` for a shopper with these sensitivities and an order worth ``value``."""
    if offer is None:
        return 0.0
    lift = 0.0
    if offer.share > 0.0:
        lift += price_sens * cond.price_sens_mult * (offer.share / DISCOUNT_REFERENCE) ** DISCOUNT_EXPONENT
    if offer.flat_fee > 0.0:
        ratio = min(offer.flat_fee / (FEE_REFERENCE_SHARE * max(value, 0.01)), FEE_RATIO_CAP)
        lift += ship_sens * cond.ship_sens_mult * ratio**FEE_EXPONENT + cond.ship_lift
    return lift


def purchase_probability(stage: str, checkout_logit: float, purchase_logit: float, lift: float) -> float:
    """P(purchase) from a decision point at ``stage`` when the offer lifts both logits by ``lift``."""
    p = sigmoid(purchase_logit + lift)
    if stage == CART:
        p *= sigmoid(checkout_logit + lift)
    return p
