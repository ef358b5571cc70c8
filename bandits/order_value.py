"""The order a shopper places if they buy under an offer, expected from the cart they had when the offer was shown.

The value at stake of an offer is what the shop keeps if the shopper buys: margin × order − the offer's cost.
At the decision only the cart is known, and the order is not the cart: shoppers add to it after the offer (on
the simulator, free shipping draws bigger orders, a discount makes some shoppers fill their basket). Valuing an
offer on the cart makes the policy rank offers by the wrong numbers; after a change in how shoppers respond to
an offer (a launch, a season) it stays wrong however much the policy learns about who buys, because that is not
what it learns. :class:`OrderValueModel` learns, from the purchases themselves, the order expected *from those
who bought under each offer*, given the first cart:

* per offer, least squares of the order on ``[1, cart/100, log1p(cart)]`` (orders grow with the cart, less
  than in proportion on large carts), shrunk towards the fit pooled over all offers with a prior worth
  ``shrink`` purchases, so a rarely shown offer borrows the pooled shape and moves by its own evidence;
* the cart itself until ``min_purchases`` purchases were seen (no evidence, no correction), and never less than
  ``floor`` × the cart (a regression extrapolated to a cart it has not seen can dip below what is already in it);
* forgetting: each purchase ages every fit by ``2^(−1/half_life)``, so after a shift in how orders grow the old
  evidence fades over ``half_life`` purchases;
* shared by a fleet (:mod:`stream.core.lessons`): a lesson is the normal equations of the purchases since the
  last one; folding ages every fit by ``γ`` per purchase in it and adds them (exact).

>>> model = OrderValueModel(min_purchases=10)
>>> for cart in (20.0, 40.0, 60.0, 80.0) * 100:
...     model.learn("free_shipping", cart, 1.5 * cart)
...     model.learn("none", cart, cart)
>>> round(model.expected("none", 50.0), 1), round(model.expected("free_shipping", 50.0), 1)  # shrunk a little
(51.5, 73.6)
>>> round(model.expected("discount_5", 50.0), 1)  # never bought under: the pooled fit
62.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from stream.core.lessons import Lesson

TERMS = 3
RIDGE = 1e-3  # keeps the pooled fit solvable before the carts vary


def order_terms(cart: float) -> np.ndarray:
    """The regression's terms for a cart: ``[1, cart/100, log1p(cart)]``."""
    return np.array([1.0, cart / 100.0, math.log1p(cart)])


class OrderValueModel:
    """Per-offer regressions of the order on the cart at the decision, shrunk to the pooled one, forgetting."""

    def __init__(
        self,
        shrink: float = 50.0,
        min_purchases: int = 30,
        floor: float = 0.5,
        half_life: float | None = 5_000.0,
    ) -> None:
        if shrink <= 0 or min_purchases < 0 or not 0 <= floor <= 1 or (half_life is not None and half_life <= 0):
            raise ValueError("shrink > 0, min_purchases >= 0, 0 <= floor <= 1 and half_life > 0 (or None)")
        self.shrink = shrink
        self.min_purchases = min_purchases
        self.floor = floor
        self.half_life = half_life
        self._gamma = 1.0 if half_life is None else 2.0 ** (-1.0 / half_life)
        self.purchases = 0
        self._pooled = (np.zeros((TERMS, TERMS)), np.zeros(TERMS))
        self._per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._betas: dict[str, np.ndarray] | None = None  # cached fits, dropped at each purchase
        self._start_lesson()

    def _start_lesson(self) -> None:
        self._lesson_purchases = 0
        self._lesson_pooled = (np.zeros((TERMS, TERMS)), np.zeros(TERMS))
        self._lesson_per: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def learn(self, offer: str, cart: float, order: float) -> None:
        """One purchase under ``offer``: the cart at the decision and the order placed."""
        if not (math.isfinite(cart) and math.isfinite(order) and cart > 0 and order > 0):
            raise ValueError(f"cart {cart!r} and order {order!r} must be positive numbers")
        x = order_terms(cart)
        self._per.setdefault(offer, (np.zeros((TERMS, TERMS)), np.zeros(TERMS)))
        self._lesson_per.setdefault(offer, (np.zeros((TERMS, TERMS)), np.zeros(TERMS)))
        self._age(self._gamma, (self._pooled, *self._per.values(), self._lesson_pooled, *self._lesson_per.values()))
        for a, b in (self._pooled, self._per[offer], self._lesson_pooled, self._lesson_per[offer]):
            a += np.outer(x, x)
            b += order * x
        self.purchases += 1
        self._lesson_purchases += 1
        self._betas = None

    @staticmethod
    def _age(factor: float, fits: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        if factor < 1.0:
            for a, b in fits:
                a *= factor
                b *= factor

    def lesson(self) -> Lesson | None:
        """The normal equations (pooled and per offer) of the purchases since the last lesson."""
        if not self._lesson_purchases:
            return None
        lesson = {
            "purchases": self._lesson_purchases,
            "pooled": [self._lesson_pooled[0].tolist(), self._lesson_pooled[1].tolist()],
            "offers": {o: [a.tolist(), b.tolist()] for o, (a, b) in sorted(self._lesson_per.items())},
        }
        self._start_lesson()
        return lesson

    def whole_lesson(self) -> Lesson | None:
        """Every fit's normal equations (they start at zero, so they are the whole lesson)."""
        if not self.purchases:
            return None
        return {
            "purchases": self.purchases,
            "pooled": [self._pooled[0].tolist(), self._pooled[1].tolist()],
            "offers": {o: [a.tolist(), b.tolist()] for o, (a, b) in sorted(self._per.items())},
        }

    def fold(self, lesson: Mapping[str, Any]) -> None:
        """Age every fit by ``γ`` per purchase in the lesson, then add its normal equations."""
        purchases = int(lesson["purchases"])
        self._age(self._gamma**purchases, (self._pooled, *self._per.values()))
        for (a, b), (more_a, more_b) in [(self._pooled, lesson["pooled"])] + [
            (self._per.setdefault(o, (np.zeros((TERMS, TERMS)), np.zeros(TERMS))), ab)
            for o, ab in lesson["offers"].items()
        ]:
            a += np.asarray(more_a, dtype=float)
            b += np.asarray(more_b, dtype=float)
        self.purchases += purchases
        self._betas = None

    def _fits(self) -> dict[str, np.ndarray]:
        if self._betas is None:
            a, b = self._pooled
            pooled = np.linalg.solve(a + RIDGE * np.eye(TERMS), b)
            prior = self.shrink * a / max(a[0, 0], 1e-12)  # the pooled design, worth ``shrink`` purchases
            self._betas = {"": pooled} | {
                offer: np.linalg.solve(a_o + prior + RIDGE * np.eye(TERMS), b_o + prior @ pooled)
                for offer, (a_o, b_o) in self._per.items()
            }
        return self._betas

    def expected(self, offer: str, cart: float) -> float:
        """The order expected if the shopper buys under ``offer`` with ``cart`` in the basket."""
        if self.purchases < self.min_purchases:
            return cart
        fits = self._fits()
        beta = fits.get(offer, fits[""])
        return max(self.floor * cart, float(order_terms(cart) @ beta))

    def snapshot(self) -> dict[str, Any]:
        return {
            "purchases": self.purchases,
            "pooled": [self._pooled[0].tolist(), self._pooled[1].tolist()],
            "offers": {o: [a.tolist(), b.tolist()] for o, (a, b) in sorted(self._per.items())},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.purchases = int(state["purchases"])
        self._pooled = (np.array(state["pooled"][0], float), np.array(state["pooled"][1], float))
        self._per = {o: (np.array(a, float), np.array(b, float)) for o, (a, b) in state["offers"].items()}
        self._betas = None
        self._start_lesson()
