"""The linear policies' view of a context: a short list of named terms turned into one vector per offer.

A term is one of

* ``name``: the value as it is (probabilities, rates, indicators, sine/cosine of the hour);
* ``log1p:name``: ``log(1 + max(value, 0))``, for counts and amounts with a long tail (cart value, orders);
* ``name==v``: 1 when the value equals ``v`` (one-hot of a category, e.g. ``segment==2``);
* ``name/k``: the value divided by ``k``;
* ``arm:name``: the offer's own value, read from the key ``name:<offer>`` (e.g. ``arm:buy_snapshot`` reads
  ``buy_snapshot:discount_10`` for ``discount_10``): how one model per offer sees an offer-specific input.

Every vector starts with a constant 1 (the intercept). A missing or NaN value counts as 0 (the term's
"unknown" level; the intercept absorbs it), and every value is clipped to ±:data:`CLIP`, so that one absurd
input cannot wreck a posterior. :func:`offer_values` reads each offer's value at stake (``<key>:<offer>``, 0
when unknown), which the linear policies multiply in (see :mod:`bandits.linear`).

>>> enc = ContextEncoder(("log1p:cart_value", "segment==1", "arm:buy_snapshot"))
>>> enc.encode({"cart_value": 9.0, "segment": 1.0, "buy_snapshot:a": 0.5}, ["a", "b"]).round(3).tolist()
[[1.0, 2.303, 1.0, 0.5], [1.0, 2.303, 1.0, 0.0]]
>>> enc.dim, enc.names[:2]
(4, ('1', 'log1p:cart_value'))
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from stream.core.contract import REFERRER_CHANNELS

CLIP = 100.0

# One indicator per cluster of the online segmenter (models/learners/segments.py, 4 by default), and per channel
# the session came from (the features' own list; ``search``, the commonest, is the level the intercept holds).
SEGMENT_TERMS: tuple[str, ...] = tuple(f"segment=={k}" for k in range(4))
CHANNEL_TERMS: tuple[str, ...] = tuple(f"from_{c}" for c in REFERRER_CHANNELS if c != "search")

# The nightly snapshot's scores as context terms: its purchase intent, its lift of a 10 % discount, and each
# offer's purchase probability under it (``policy.prior_coefficients`` warm-starts ``arm:buy_snapshot``). In
# the defaults, last. Measured in the closed loop with the nightly retrain in it (docs/results/policies.md,
# "With the nightly job in the loop"): at 8,000 shoppers as much or more than without them on five runs of
# six, and 5.6 % less on one, where the snapshot did not learn a competitor's launch in time.
SNAPSHOT_TERMS: tuple[str, ...] = ("intent_snapshot", "lift_snapshot", "arm:buy_snapshot")
SNAPSHOT_LIFT_TERMS: tuple[str, ...] = ("lift_snapshot",)

# The shop's default context: the online learners' scores, the segment, the cart and its stage, the shopper's
# history and answers to past offers, time and device, and the nightly snapshot's scores.
DEFAULT_CONTEXT: tuple[str, ...] = (
    "intent_online",
    "lift_online",
    *SEGMENT_TERMS,
    "cart_value/100",
    "log1p:cart_value",
    "checkouts",
    "log1p:product_views",
    "price_vs_usual",
    "log1p:purchases_total",
    "log1p:days_since_last_purchase",
    "offer_conversion_rate",
    "log1p:offers_shown",
    "mobile",
    *CHANNEL_TERMS,
    "weekend",
    "hour_sin",
    "hour_cos",
    *SNAPSHOT_TERMS,
)

# The terms on which offers' effects differ (each offer gets its own coefficients on these).
DEFAULT_LIFT_CONTEXT: tuple[str, ...] = (
    "lift_online",
    *SEGMENT_TERMS,
    "log1p:cart_value",
    "log1p:purchases_total",
    "price_vs_usual",
    "offer_conversion_rate",
    "mobile",
    *CHANNEL_TERMS,
    *SNAPSHOT_LIFT_TERMS,
)

_TERM = re.compile(
    r"^(?:(?P<log>log1p:)|(?P<arm>arm:))?(?P<name>[A-Za-z0-9_.\-]+)(?:==(?P<eq>[-+.\deE]+)|/(?P<div>[\d.eE+]+))?$"
)


def _number(value: object) -> float:
    if type(value) is float:  # the common case, first: a context is mostly floats
        return 0.0 if value != value else value  # NaN is the only value unequal to itself
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float):
        return 0.0
    v = float(value)
    return 0.0 if math.isnan(v) else v


class ContextEncoder:
    """Parses the terms once; :meth:`encode` builds the (offers × dim) design matrix of one context."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(terms)
        if len(set(self.terms)) != len(self.terms):
            raise ValueError(f"context terms repeat: {self.terms}")
        self._shared: list[tuple[int, Callable[[Mapping[str, object]], float]]] = []
        self._per_arm: list[tuple[int, str]] = []
        for i, term in enumerate(self.terms, start=1):
            m = _TERM.match(term)
            if m is None:
                raise ValueError(f"context term {term!r} is not NAME, log1p:NAME, NAME==V, NAME/K or arm:NAME")
            name = m["name"]
            if m["arm"]:
                if m["eq"] or m["div"]:
                    raise ValueError(f"context term {term!r}: arm: terms take the value as it is")
                self._per_arm.append((i, name))
            else:
                self._shared.append((i, _reader(name, bool(m["log"]), m["eq"], m["div"])))
        self._shared_at = [i for i, _ in self._shared]

    @property
    def dim(self) -> int:
        return len(self.terms) + 1

    @property
    def names(self) -> tuple[str, ...]:
        return ("1", *self.terms)

    def encode(self, context: Mapping[str, object], offers: Sequence[str]) -> np.ndarray:
        row = np.zeros(self.dim)
        row[0] = 1.0
        if self._shared:
            row[self._shared_at] = [read(context) for _, read in self._shared]
        xs = np.broadcast_to(row, (len(offers), self.dim)).copy()
        for i, name in self._per_arm:
            for j, offer in enumerate(offers):
                xs[j, i] = _number(context.get(f"{name}:{offer}"))
        np.clip(xs, -CLIP, CLIP, out=xs)
        return xs


def offer_values(context: Mapping[str, object], key: str, offers: Sequence[str]) -> np.ndarray:
    """Each offer's ``<key>:<offer>`` from the context (0 when missing or NaN).

    >>> offer_values({"margin_value:a": 3.0}, "margin_value", ["a", "b"]).tolist()
    [3.0, 0.0]
    """
    return np.array([_number(context.get(f"{key}:{offer}")) for offer in offers])


def _reader(name: str, log: bool, eq: str | None, div: str | None) -> Callable[[Mapping[str, object]], float]:
    if eq is not None:
        target = float(eq)
        return lambda c: 1.0 if _number(c.get(name)) == target and c.get(name) is not None else 0.0
    if log:
        return lambda c: math.log1p(max(_number(c.get(name)), 0.0))
    if div is not None:
        k = float(div)
        if k == 0.0:
            raise ValueError(f"context term {name}/{div} divides by zero")
        return lambda c: _number(c.get(name)) / k
    return lambda c: _number(c.get(name))
