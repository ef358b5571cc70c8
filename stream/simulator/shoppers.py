"""Synthetic shoppers and the product catalogue: latent traits drawn once per user, from the seed alone.

Four segments (shares in brackets) differ in the means of each trait; every user then varies around their
segment's mean, so two shoppers of one segment are alike but not identical:

=================  =====  ======  ===========  ==========  ============  ===========
segment            share  intent  price_sens   ship_sens   sessions/day  mobile
=================  =====  ======  ===========  ==========  ============  ===========
bargain_hunter     0.25   -0.1    1.10         0.55        0.55          0.70
convenience        0.30    0.1    0.30         1.10        0.45          0.72
loyal              0.15    0.5    0.15         0.25        0.90          0.62
browser            0.30   -0.5    0.55         0.60        0.35          0.68
=================  =====  ======  ===========  ==========  ============  ===========

* ``intent``: a logit added to carting (×1) and to checkout and purchase (×0.9); normal, sd 0.5. Each
  session adds its own mood to it (``sessions.SESSION_INTENT_SD``).
* ``price_sens``: the logit lift a 10% discount gives this shopper (``behaviour.offer_lift``); lognormal
  around the mean (sd 0.35 on the log scale).
* ``ship_sens``: the logit lift of waiving a shipping fee worth 15% of the order; lognormal (sd 0.35). The
  lift grows as the fee's share of the order grows, so it is larger on small carts.
* ``session_rate``: mean sessions per day; gamma with shape 0.8 (heavy-tailed: a few users visit daily).
* ``mobile``: probability that a session is on mobile; beta around the segment's mean (about 68% overall,
  inside the 60-75% that benchmarks report).
* ``favourite``: a category that gets 55% of the shopper's product views.

Traits live in plain lists (O(users) memory) and are drawn vectorised from ``default_rng([seed, 1])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

TRAITS_STREAM = 1
PRODUCTS_STREAM = 2


@dataclass(frozen=True, slots=True)
class SegmentProfile:
    name: str
    share: float
    intent: float
    price_sens: float
    ship_sens: float
    session_rate: float
    mobile: float


SEGMENT_PROFILES: tuple[SegmentProfile, ...] = (
    SegmentProfile("bargain_hunter", 0.25, -0.1, 1.10, 0.55, 0.55, 0.70),
    SegmentProfile("convenience", 0.30, 0.1, 0.30, 1.10, 0.45, 0.72),
    SegmentProfile("loyal", 0.15, 0.5, 0.15, 0.25, 0.90, 0.62),
    SegmentProfile("browser", 0.30, -0.5, 0.55, 0.60, 0.35, 0.68),
)
SEGMENTS: tuple[str, ...] = tuple(p.name for p in SEGMENT_PROFILES)

INTENT_SD = 0.5
SENS_LOG_SD = 0.35
RATE_SHAPE = 0.8
MOBILE_CONCENTRATION = 20.0


class Shopper(NamedTuple):
    """One user's latent traits."""

    user_index: int
    user_id: str
    segment: str
    intent: float
    price_sens: float
    ship_sens: float
    session_rate: float
    mobile: float
    favourite: int


def user_id_of(index: int) -> str:
    return f"u{index:05d}"


class Population:
    """The latent traits of ``users`` shoppers, reproducible from ``seed``.

    >>> pop = Population(3, seed=7, n_categories=len(CATEGORIES))
    >>> pop.shopper(0).user_id, pop.shopper(0).segment in SEGMENTS
    ('u00000', True)
    """

    def __init__(self, users: int, seed: int, n_categories: int) -> None:
        rng = np.random.default_rng([seed, TRAITS_STREAM])
        shares = np.array([p.share for p in SEGMENT_PROFILES])
        seg = rng.choice(len(SEGMENT_PROFILES), size=users, p=shares / shares.sum())

        def col(attr: str) -> np.ndarray:
            return np.array([getattr(p, attr) for p in SEGMENT_PROFILES])[seg]

        intent = col("intent") + INTENT_SD * rng.standard_normal(users)
        price_sens = col("price_sens") * np.exp(SENS_LOG_SD * rng.standard_normal(users))
        ship_sens = col("ship_sens") * np.exp(SENS_LOG_SD * rng.standard_normal(users))
        rate = rng.gamma(RATE_SHAPE, col("session_rate") / RATE_SHAPE)
        m = col("mobile")
        mobile = rng.beta(m * MOBILE_CONCENTRATION, (1.0 - m) * MOBILE_CONCENTRATION)
        favourite = rng.integers(0, n_categories, size=users)
        self.users = users
        self.segment: list[int] = seg.tolist()
        self.intent: list[float] = intent.tolist()
        self.price_sens: list[float] = price_sens.tolist()
        self.ship_sens: list[float] = ship_sens.tolist()
        self.session_rate: list[float] = rate.tolist()
        self.mobile: list[float] = mobile.tolist()
        self.favourite: list[int] = favourite.tolist()

    def shopper(self, u: int) -> Shopper:
        return Shopper(
            u,
            user_id_of(u),
            SEGMENTS[self.segment[u]],
            self.intent[u],
            self.price_sens[u],
            self.ship_sens[u],
            self.session_rate[u],
            self.mobile[u],
            self.favourite[u],
        )


CATEGORIES: tuple[tuple[str, float], ...] = (
    # (name, median price)
    ("electronics", 55.0),
    ("home", 32.0),
    ("fashion", 38.0),
    ("beauty", 18.0),
    ("sports", 42.0),
    ("toys", 24.0),
    ("books", 14.0),
    ("garden", 29.0),
)
PRODUCTS_PER_CATEGORY = 50
PRICE_LOG_SD = 0.6


class Product(NamedTuple):
    product_id: str
    category: str
    price: float


class ProductCatalogue:
    """Products by category, prices lognormal around each category's median (cents, .99 endings)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, PRODUCTS_STREAM])
        self.categories: tuple[str, ...] = tuple(c for c, _ in CATEGORIES)
        self.by_category: list[list[Product]] = []
        n = 0
        for name, median in CATEGORIES:
            prices = median * np.exp(PRICE_LOG_SD * rng.standard_normal(PRODUCTS_PER_CATEGORY))
            products = []
            for p in prices.tolist():
                n += 1
                products.append(Product(f"p{n:04d}", name, max(0.99, float(int(p)) + 0.99)))
            self.by_category.append(products)

    def pick(self, favourite: int, u_cat: float, u_prod: float, favourite_share: float = 0.55) -> Product:
        """A product: from the favourite category with ``favourite_share``, else uniformly by category."""
        if u_cat < favourite_share:
            cat = favourite
        else:
            cat = int((u_cat - favourite_share) / (1.0 - favourite_share) * len(self.by_category))
            cat = min(cat, len(self.by_category) - 1)
        products = self.by_category[cat]
        return products[min(int(u_prod * len(products)), len(products) - 1)]
