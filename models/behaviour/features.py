"""The one feature definition, computed from per-user and per-session state.

The worker computes it at decision points; the nightly trainer rebuilds it by running the archive's events
through the same state tracker (:mod:`models.behaviour.tracker`), and the strategy lab does the same in its replays, so
training and serving cannot drift apart. Changing what it returns means bumping :data:`FEATURES_VERSION`, which
every decision and every snapshot names (a worker refuses a snapshot trained on other features).

Two families:

* **Behaviour** (:data:`FEATURE_NAMES`, :func:`behaviour_features`): what the events alone say — the session's
  counts and rates, cart value, prices seen against the user's usual, the user's activity over rolling windows,
  recency / frequency / monetary history, time of day and week, device, the channel the session came from. A
  pure function of the event sequence,
  so a replay of the archive rebuilds it exactly; the snapshot models and the online intent learner see these.
* **Offer history** (:data:`OFFER_HISTORY_NAMES`): how this user answered offers before (offers shown, bought
  after one). It depends on the policy's past choices, so it is kept by the decision stage and logged with
  every decision; the bandit's context uses it. The River learners and the nightly trainer do not (yet): they
  see the behaviour features only.

Rolling windows are exponentially decayed counts (half-lives of 1 and 14 days, updated per event by
:func:`models.behaviour.state.record_activity`, read here at the event's time): the streaming form of "in the last
day / two weeks" that needs two floats per behaviour and no event buffer. A missing value (no purchase yet, no price
seen) is NaN, which XGBoost treats as missing and the River learners skip.

>>> from models.behaviour.state import SessionState, UserState, record_activity
>>> u = UserState("u1", first_ms=0, last_ms=0)
>>> s = SessionState("s1", "u1", started_ms=0, last_ms=90_000, device="mobile", cart_value=42.0,
...                  counts={"product_view": 3, "add_to_cart": 1})
>>> record_activity(u, "product_view", 0, price=20.0)
>>> f = behaviour_features(s, u, event_ms=90_000)
>>> f["cart_value"], f["product_views"], f["mobile"], f["session_minutes"], round(f["views_1d"], 3)
(42.0, 3.0, 1.0, 1.5, 0.999)
>>> len(f) == len(FEATURE_NAMES) and list(f) == list(FEATURE_NAMES)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo

import numpy as np

from models.behaviour.state import DAY_MS, DECAY_PER_MS, HALF_LIVES_DAYS, ROLLING, SessionState, UserState, windows_at
from stream.core.contract import REFERRER_CHANNELS

FEATURES_VERSION = "behaviour-v3"


_SESSION = (
    "page_views",
    "product_views",
    "searches",
    "adds",
    "removes",
    "checkouts",
    "cart_value",
    "avg_price_viewed",
    "price_vs_usual",
    "session_minutes",
    "events_per_minute",
    "cart_rate",
)
_WINDOWS = tuple(f"{name}_{days}d" for days in HALF_LIVES_DAYS for name in ROLLING)
_LONG_WINDOWS = _WINDOWS[len(ROLLING) :]  # the longer half-life's counts: what segmentation sees
_HISTORY = (
    "user_sessions",
    "days_since_first_seen",
    "days_since_last_purchase",
    "purchases_total",
    "avg_order_value",
)
_CONTEXT = ("hour_sin", "hour_cos", "weekday", "weekend", "mobile", "tablet", "desktop")
# Where the session came from (its first event's ``referrer``): one indicator per channel, all 0 when unknown.
_CHANNEL = tuple(f"from_{c}" for c in REFERRER_CHANNELS)
FEATURE_NAMES: tuple[str, ...] = _SESSION + _WINDOWS + _HISTORY + _CONTEXT + _CHANNEL
OFFER_HISTORY_NAMES: tuple[str, ...] = ("offers_shown", "offers_converted", "offer_conversion_rate")

_NAN = float("nan")


def behaviour_features(session: SessionState, user: UserState, event_ms: int, tz: tzinfo = UTC) -> dict[str, float]:
    """The behaviour features at ``event_ms``, keyed by :data:`FEATURE_NAMES` in that order.

    ``tz`` is the shop's time zone for the hour and weekday.
    """
    avg_price = session.price_sum / session.price_n if session.price_n else _NAN
    usual = user.usual_price
    minutes = max(0.0, (event_ms - session.started_ms) / 60_000)
    events = sum(session.counts.values())
    product_views = session.count("product_view")
    local = datetime.fromtimestamp(event_ms / 1000, tz)
    hour = local.hour + local.minute / 60
    device = session.device
    values = [
        float(session.count("page_view")),
        float(product_views),
        float(session.count("search")),
        float(session.count("add_to_cart")),
        float(session.count("remove_from_cart")),
        float(session.count("checkout_start")),
        round(session.cart_value, 2),
        round(avg_price, 2),
        round(avg_price / usual, 4) if session.price_n and usual else _NAN,
        round(minutes, 3),
        round(events / max(minutes, 1.0), 4),
        round(session.count("add_to_cart") / product_views, 4) if product_views else 0.0,
        *(round(v, 4) for v in windows_at(user, event_ms)),
        float(user.sessions),
        round((event_ms - user.first_ms) / DAY_MS, 3),
        round((event_ms - user.last_purchase_ms) / DAY_MS, 3) if user.last_purchase_ms is not None else _NAN,
        float(user.purchases),
        round(user.revenue / user.purchases, 2) if user.purchases else _NAN,
        round(math.sin(2 * math.pi * hour / 24), 4),
        round(math.cos(2 * math.pi * hour / 24), 4),
        float(local.weekday()),
        1.0 if local.weekday() >= 5 else 0.0,
        1.0 if device == "mobile" else 0.0,
        1.0 if device == "tablet" else 0.0,
        1.0 if device == "desktop" else 0.0,
        *(1.0 if session.referrer == channel else 0.0 for channel in REFERRER_CHANNELS),
    ]
    return dict(zip(FEATURE_NAMES, values, strict=True))


def offer_history_features(offers_shown: int, offers_converted: int) -> dict[str, float]:
    """How this user answered offers before (offers other than ``none``).

    >>> offer_history_features(4, 1)
    {'offers_shown': 4.0, 'offers_converted': 1.0, 'offer_conversion_rate': 0.25}
    """
    rate = offers_converted / offers_shown if offers_shown else 0.0
    return {"offers_shown": float(offers_shown), "offers_converted": float(offers_converted),
            "offer_conversion_rate": round(rate, 4)}  # fmt: skip


def user_vector(features: Mapping[str, float]) -> dict[str, float]:
    """What segmentation clusters: the user's longer-run behaviour, from the behaviour features."""
    return {name: features[name] for name in _LONG_WINDOWS + _HISTORY[:1] + ("mobile",)} | {
        "avg_order_value": _finite_or(features["avg_order_value"], 0.0),
        "days_since_last_purchase": _finite_or(features["days_since_last_purchase"], 365.0),
    }


def user_vector_at(session: SessionState, user: UserState, event_ms: int) -> dict[str, float]:
    """``user_vector(behaviour_features(session, user, event_ms))``, computing only what the vector holds.

    The state tracker builds one at every session close, for the segmenter; the full features would cost it
    every session-level and calendar feature as well. The values are the same floats (a test checks it).
    """
    n = len(ROLLING)
    factor = math.exp(-DECAY_PER_MS[1] * max(0, event_ms - user.decayed_ms))
    vector = {name: round(v * factor, 4) for name, v in zip(_LONG_WINDOWS, user.decayed[n : 2 * n], strict=True)}
    vector["user_sessions"] = float(user.sessions)
    vector["mobile"] = 1.0 if session.device == "mobile" else 0.0
    vector["avg_order_value"] = round(user.revenue / user.purchases, 2) if user.purchases else 0.0
    last = user.last_purchase_ms
    vector["days_since_last_purchase"] = round((event_ms - last) / DAY_MS, 3) if last is not None else 365.0
    return vector


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def as_row(features: Mapping[str, float], names: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """The features in ``names`` order as a float32 row (missing names are NaN), as the snapshot models take them."""
    return np.array([features.get(n, _NAN) for n in names], dtype=np.float32)
