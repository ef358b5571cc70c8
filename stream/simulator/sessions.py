"""One shopping session: its plan, drawn up front from its own generator, and the events it emits.

A session draws everything it will ever need from its own generator, seeded by (seed, user, session index)
(``Draws``), when it starts:
device, referrer, the browsing path (geometric numbers of page views, product views and searches), whether
and what it puts in the cart (the first add is a decision point), further adds and removals, the gaps
between events (lognormal, median 25 s, 2 s to 10 min), and the uniforms that will decide checkout,
purchase, attribution and whether a ``session_end`` is emitted (90% of sessions). Only then does anything
happen, so the offer a shopper sees changes nothing but the comparison of those pre-drawn uniforms with the
offer-dependent probabilities (common random numbers): the same session under two offers differs only
from its checkout on, and no other session changes at all.

Order of a session's events::

    session_start → browse* → [product_view → add_to_cart (decision point)
                     → (browse* → product_view → add_to_cart → remove_from_cart?)* → browse*
                     → checkout_start (decision point if no offer seen yet) → page_view? → purchase?]
                  → session_end (most sessions)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from bandits.offers import Offer
from stream.simulator.behaviour import CART, CHECKOUT, buy_logits, cart_logit, offer_lift, sigmoid
from stream.simulator.oracle import DecisionState
from stream.simulator.scenarios import Conditions
from stream.simulator.shoppers import ProductCatalogue, Shopper

REFERRERS: tuple[tuple[str, float], ...] = (
    ("direct", 0.30),
    ("search", 0.30),
    ("email", 0.12),
    ("social", 0.13),
    ("ads", 0.15),
)
# Where a session comes from depends on who the shopper is (a modelling assumption, not a published figure):
# bargain hunters arrive through ads (deal and price-comparison placements) and search, loyal customers type
# the address or follow the newsletter, convenience shoppers come from social and ads on their phones. Mixed
# by the segments' shares, the channels keep the overall shares of REFERRERS within a point or two.
REFERRERS_BY_SEGMENT: dict[str, tuple[tuple[str, float], ...]] = {
    "bargain_hunter": (("direct", 0.10), ("search", 0.40), ("email", 0.10), ("social", 0.10), ("ads", 0.30)),
    "convenience": (("direct", 0.25), ("search", 0.25), ("email", 0.05), ("social", 0.25), ("ads", 0.20)),
    "loyal": (("direct", 0.60), ("search", 0.10), ("email", 0.25), ("social", 0.03), ("ads", 0.02)),
    "browser": (("direct", 0.35), ("search", 0.35), ("email", 0.12), ("social", 0.10), ("ads", 0.08)),
}
BROWSE_TYPES: tuple[tuple[str, float], ...] = (("page_view", 0.45), ("product_view", 0.40), ("search", 0.15))
TABLET_SHARE_OF_NON_MOBILE = 0.2

MEAN_BROWSE_NO_CART = 4.0  # extra browse events (after the first) in a session that never carts
# A session's own intent: the shopper's, plus a mood of the day (normal, this sd). It drives carting and
# buying, and it shows: a decided session browses less before its first add to cart and adds more items, so
# the behaviour a decision point sees carries (noisy) signal about the purchase, as real clickstream does.
SESSION_INTENT_SD = 0.6
DECISIVENESS = 0.8  # browsing before the first add scales by exp(-DECISIVENESS × session intent)
BASKET_APPETITE = 0.35  # extra adds scale by exp(BASKET_APPETITE × session intent)
MEAN_BROWSE_BEFORE_ADD = 3.0
MEAN_EXTRA_ADDS = 0.7
MEAN_BROWSE_BETWEEN_ADDS = 1.5
MEAN_BROWSE_AFTER_CART = 1.0
MAX_BROWSE = 40
MAX_EXTRA_ADDS = 6
REMOVE_PROBABILITY = 0.15
PAYMENT_PAGE_PROBABILITY = 0.7
SESSION_END_PROBABILITY = 0.9
ATTRIBUTION_PROBABILITY = 0.9

GAP_MEDIAN_S = 25.0
GAP_LOG_SD = 0.9
GAP_MIN_S = 2.0
GAP_MAX_S = 600.0

Step = tuple[int, str, dict[str, Any]]  # (gap in ms since the previous event, type, fields)


class Tail(NamedTuple):
    """What the checkout part of a carting session needs, drawn at session start."""

    gap_checkout: int
    gap_payment: int
    gap_purchase: int
    u_payment_page: float
    quantity: int


def _pick(weights: tuple[tuple[str, float], ...], u: float) -> str:
    for name, w in weights:
        if u < w:
            return name
        u -= w
    return weights[-1][0]


class Draws:
    """A session's random numbers: a ``random.Random`` seeded by (seed, user, session index) alone.

    ``Random(int).random()`` is the stream that Python guarantees to keep across versions; normals are
    made from it here (Box-Muller) rather than with ``gauss``, whose algorithm is not guaranteed. Seeding
    one costs a fifth of a numpy ``default_rng``, and a shop makes one per candidate session.
    """

    __slots__ = ("_spare", "u")

    def __init__(self, seed: int, user: int, index: int) -> None:
        key = ((seed % 2**64) << 64) | ((user % 2**32) << 32) | (index % 2**32)
        self.u = random.Random(key).random  # the next uniform in [0, 1)
        self._spare: float | None = None

    def normal(self) -> float:
        if self._spare is not None:
            z, self._spare = self._spare, None
            return z
        r = math.sqrt(-2.0 * math.log(1.0 - self.u()))
        theta = 2.0 * math.pi * self.u()
        self._spare = r * math.sin(theta)
        return r * math.cos(theta)

    def gap_ms(self, scale: float = 1.0) -> int:
        s = GAP_MEDIAN_S * scale * math.exp(GAP_LOG_SD * self.normal())
        return int(1000.0 * min(max(s, GAP_MIN_S), GAP_MAX_S))

    def geometric(self, mean: float, cap: int) -> int:
        """A count ≥ 0 with the given mean (geometric), at most ``cap``."""
        q = mean / (1.0 + mean)  # P(one more)
        return min(int(math.log(1.0 - self.u()) / math.log(q)), cap)


class Session:
    """A planned session; ``advance`` produces its next event, ``see_offer`` records the offer it saw."""

    __slots__ = (
        "_clock",
        "_end_gap",
        "_gen",
        "_k",
        "_steps",
        "_tail_plan",
        "carted",
        "conditions",
        "decision_id",
        "device",
        "eligible",
        "intent",
        "offer",
        "offer_stage",
        "pending",
        "referrer",
        "session_id",
        "shopper",
        "u_attrib",
        "u_checkout",
        "u_end",
        "u_purchase",
        "value",
    )

    def __init__(
        self,
        shopper: Shopper,
        session_index: int,
        start_ms: int,
        draws: Draws,
        conditions: Conditions,
        products: ProductCatalogue,
    ) -> None:
        self.shopper = shopper
        self.session_id = f"{shopper.user_id}-s{session_index}"
        self.conditions = conditions
        u = draws.u()
        if u < shopper.mobile:
            self.device = "mobile"
        else:
            tablet = (u - shopper.mobile) / (1.0 - shopper.mobile) < TABLET_SHARE_OF_NON_MOBILE
            self.device = "tablet" if tablet else "desktop"
        self.referrer = _pick(REFERRERS_BY_SEGMENT.get(shopper.segment, REFERRERS), draws.u())
        self.intent = shopper.intent + SESSION_INTENT_SD * draws.normal()
        u_cart = draws.u()
        self.u_checkout = draws.u()
        self.u_purchase = draws.u()
        self.u_attrib = draws.u()
        self.u_end = draws.u()
        self.carted = u_cart < sigmoid(cart_logit(self.intent, self.device, conditions))
        self._steps, self.value, self._tail_plan = self._plan(draws, products)
        self._end_gap = draws.gap_ms(2.0)
        self._gen: Iterator[tuple[Step, str | None]] = self._script()
        self._clock = start_ms
        self._k = 0
        self.offer: Offer | None = None  # the first offer seen (``none`` counts: it is a decision)
        self.offer_stage: str | None = None
        self.decision_id: str | None = None
        self.eligible: str | None = None  # CART / CHECKOUT when ``pending`` is a decision point
        self.pending: dict[str, Any] = self._event(start_ms, "session_start", {})

    # -- planning -------------------------------------------------------------------------------------

    def _browse(self, draws: Draws, products: ProductCatalogue, n: int, steps: list[Step]) -> None:
        factor = self.conditions.price_factor
        for _ in range(n):
            kind = _pick(BROWSE_TYPES, draws.u())
            p = products.pick(self.shopper.favourite, draws.u(), draws.u())
            if kind == "product_view":
                fields = {
                    "product_id": p.product_id,
                    "category": p.category,
                    "price": round(p.price * factor, 2),
                }
            else:
                fields = {"category": p.category}
            steps.append((draws.gap_ms(), kind, fields))

    def _plan(self, draws: Draws, products: ProductCatalogue) -> tuple[list[Step], float, Tail | None]:
        """The steps up to checkout, the final cart value, and what the checkout tail will need."""
        steps: list[Step] = []
        if not self.carted:
            self._browse(draws, products, 1 + draws.geometric(MEAN_BROWSE_NO_CART, MAX_BROWSE), steps)
            return steps, 0.0, None
        factor = self.conditions.price_factor
        cart: list[tuple[str, str, float, int]] = []  # product_id, category, price, quantity

        def value() -> float:
            return round(sum(price * qty for _, _, price, qty in cart), 2)

        n_adds = 1 + draws.geometric(MEAN_EXTRA_ADDS * math.exp(BASKET_APPETITE * self.intent), MAX_EXTRA_ADDS)
        for i in range(n_adds):
            if i == 0:
                mean = MEAN_BROWSE_BEFORE_ADD * math.exp(-DECISIVENESS * self.intent)
            else:
                mean = MEAN_BROWSE_BETWEEN_ADDS
            self._browse(draws, products, draws.geometric(mean, MAX_BROWSE), steps)
            p = products.pick(self.shopper.favourite, draws.u(), draws.u())
            price = round(p.price * factor, 2)
            uq = draws.u()
            qty = 3 if uq < 0.03 else 2 if uq < 0.15 else 1
            item = {"product_id": p.product_id, "category": p.category, "price": price}
            steps.append((draws.gap_ms(), "product_view", dict(item)))
            cart.append((p.product_id, p.category, price, qty))
            steps.append((draws.gap_ms(0.6), "add_to_cart", {**item, "quantity": qty, "cart_value": value()}))
            if len(cart) > 1 and draws.u() < REMOVE_PROBABILITY:
                pid, cat, price, qty = cart.pop(int(draws.u() * len(cart)) % len(cart))
                fields = {"product_id": pid, "category": cat, "price": price, "quantity": qty}
                steps.append((draws.gap_ms(), "remove_from_cart", {**fields, "cart_value": value()}))
        self._browse(draws, products, draws.geometric(MEAN_BROWSE_AFTER_CART, MAX_BROWSE), steps)
        # the tail's gaps and coins are drawn now too, so that nothing random happens after an offer
        tail = Tail(draws.gap_ms(1.5), draws.gap_ms(2.0), draws.gap_ms(1.5), draws.u(), sum(q for *_, q in cart))
        return steps, value(), tail

    # -- the events -----------------------------------------------------------------------------------

    def _script(self) -> Iterator[tuple[Step, str | None]]:
        first_add = True
        for step in self._steps:
            if step[1] == "add_to_cart" and first_add:
                first_add = False
                yield step, CART
            else:
                yield step, None
        if self._tail_plan is not None:
            yield from self._tail(self._tail_plan)
        if self.u_end < SESSION_END_PROBABILITY:
            yield (self._end_gap, "session_end", {}), None

    def _tail(self, plan: Tail) -> Iterator[tuple[Step, str | None]]:
        """Checkout and purchase: the only part of a session that the offer it saw can change."""
        checkout_logit, purchase_logit = buy_logits(self.intent, self.device, self.conditions)
        value = {"cart_value": self.value, "quantity": plan.quantity}
        if self.u_checkout >= sigmoid(checkout_logit + self._lift(CART)):
            return
        yield (plan.gap_checkout, "checkout_start", dict(value)), (CHECKOUT if self.offer is None else None)
        if plan.u_payment_page < PAYMENT_PAGE_PROBABILITY:
            yield (plan.gap_payment, "page_view", {"category": "checkout"}), None
        if self.u_purchase >= sigmoid(purchase_logit + self._lift(CHECKOUT)):
            return
        fields: dict[str, Any] = {**value, "revenue": self.value}
        if self.decision_id is not None and self.u_attrib < ATTRIBUTION_PROBABILITY:
            fields["decision_id"] = self.decision_id
        yield (plan.gap_purchase, "purchase", fields), None

    def _lift(self, stage: str) -> float:
        """Lift of the offer seen on the outcome decided at ``stage`` (checkout: only if seen at cart)."""
        if self.offer is None or (stage == CART and self.offer_stage != CART):
            return 0.0
        s = self.shopper
        return offer_lift(self.offer, s.price_sens, s.ship_sens, self.value, self.conditions)

    def _event(self, ts: int, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._k += 1
        ev = {
            "event_id": f"{self.session_id}-{self._k}",
            "ts": ts,
            "user_id": self.shopper.user_id,
            "session_id": self.session_id,
            "type": kind,
            "device": self.device,
            "referrer": self.referrer,
        }
        ev.update(fields)
        return ev

    def advance(self, floor_ts: int) -> bool:
        """Plan the next event into ``pending``, not before ``floor_ts``; False once the session is over."""
        nxt = next(self._gen, None)
        if nxt is None:
            return False
        (gap, kind, fields), self.eligible = nxt
        self._clock = max(self._clock + gap, floor_ts)
        self.pending = self._event(self._clock, kind, fields)
        return True

    def see_offer(self, offer: Offer, stage: str, decision_id: str | None) -> None:
        if self.offer is None:
            self.offer, self.offer_stage, self.decision_id = offer, stage, decision_id

    def decision_state(self, stage: str) -> DecisionState:
        s = self.shopper
        checkout_logit, purchase_logit = buy_logits(self.intent, self.device, self.conditions)
        return DecisionState(
            stage, checkout_logit, purchase_logit, s.price_sens, s.ship_sens, self.value, self.conditions
        )
