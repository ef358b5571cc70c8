"""Per-user and per-session state, kept in event time, and the rules that change it: one owner.

What the state stage (:mod:`models.behaviour.tracker`) knows of a shopper lives here as plain data that
snapshots to JSON and restores equal (no pickle, so a checkpoint can be inspected and cannot run code); the
tracker and :func:`record_activity` are the only writers, the features (:mod:`models.behaviour.features`) only
read it. The stores that hold it are in :mod:`models.behaviour.store`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from stream.core.contract import EVENT_TYPES

NAN = float("nan")

# Session-level counters every feature definition may read; one per behaviour we count.
COUNTED_TYPES = tuple(t for t in EVENT_TYPES if t not in ("session_start", "session_end"))

DAY_MS = 86_400_000
HALF_LIVES_DAYS = (1, 14)
# Behaviours counted over the rolling windows, and the event type each one counts.
ROLLING = {
    "views": "product_view",
    "searches": "search",
    "carts": "add_to_cart",
    "removals": "remove_from_cart",
    "checkouts": "checkout_start",
    "purchases": "purchase",
}
_SLOT = {kind: i for i, kind in enumerate(ROLLING.values())}
_USUAL_PRICE_ALPHA = 0.1  # the user's usual price: an exponential moving average over the prices they saw
DECAY_PER_MS = tuple(math.log(2) / (days * DAY_MS) for days in HALF_LIVES_DAYS)
_ROLLING_SLOTS = len(ROLLING) * len(HALF_LIVES_DAYS)
if len(HALF_LIVES_DAYS) != 2 or len(ROLLING) != 6:
    raise RuntimeError("_decay_to unrolls two half-lives of six behaviours: change it with them")


@dataclass(slots=True)
class SessionState:
    session_id: str
    user_id: str
    started_ms: int
    last_ms: int
    device: str | None = None
    referrer: str | None = None
    cart_value: float = 0.0
    price_sum: float = 0.0
    price_n: int = 0
    decisions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    purchased: bool = False
    # the behaviour features at the session's first decision point: what the intent learner learns from when
    # the session closes (its label is ``purchased``)
    decision_features: dict[str, float] | None = None
    decision_ms: int | None = None

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)


@dataclass(slots=True)
class UserState:
    user_id: str
    first_ms: int
    last_ms: int
    sessions: int = 0
    purchases: int = 0
    revenue: float = 0.0
    current_session: str | None = None
    last_purchase_ms: int | None = None
    usual_price: float | None = None
    # rolling counts (see models.behaviour.features): one exponentially decayed count per behaviour and half-life
    decayed: list[float] = field(default_factory=lambda: [0.0] * _ROLLING_SLOTS)
    decayed_ms: int = 0


def record_activity(user: UserState, kind: str, ts_ms: int, price: float | None = None) -> None:
    """Fold one event into the user's rolling counts and usual price (called by the state tracker).

    Counts decay from ``user.decayed_ms`` to ``ts_ms``; an event older than that (out of order) is counted at
    the newer time, so the counts never grow backwards in time.
    """
    slot = _SLOT.get(kind)
    if price is not None and kind in ("product_view", "add_to_cart"):
        user.usual_price = (
            price if user.usual_price is None else user.usual_price + _USUAL_PRICE_ALPHA * (price - user.usual_price)
        )
    if slot is None:
        return
    _decay_to(user, ts_ms)
    n = len(ROLLING)
    for w in range(len(HALF_LIVES_DAYS)):
        user.decayed[w * n + slot] += 1.0


def _decay_to(user: UserState, ts_ms: int) -> None:
    dt = ts_ms - user.decayed_ms
    if dt <= 0:
        return
    d = user.decayed
    f1, f2 = (math.exp(-rate * dt) for rate in DECAY_PER_MS)
    user.decayed = [d[0] * f1, d[1] * f1, d[2] * f1, d[3] * f1, d[4] * f1, d[5] * f1,
                    d[6] * f2, d[7] * f2, d[8] * f2, d[9] * f2, d[10] * f2, d[11] * f2]  # fmt: skip
    user.decayed_ms = ts_ms


def windows_at(user: UserState, ts_ms: int) -> list[float]:
    """The rolling counts read at ``ts_ms`` (without changing the state)."""
    dt = max(0, ts_ms - user.decayed_ms)
    n = len(ROLLING)
    out: list[float] = []
    for w, rate in enumerate(DECAY_PER_MS):
        factor = math.exp(-rate * dt)
        out.extend(v * factor for v in user.decayed[w * n : w * n + n])
    return out


_USER_FIELDS = tuple(f.name for f in fields(UserState))
_SESSION_FIELDS = tuple(f.name for f in fields(SessionState))


def user_dict(user: UserState) -> dict[str, Any]:
    """``dataclasses.asdict(user)``, ten times faster: the fields are numbers, strings and one list of floats,
    so a copy of that list is the only deep copy needed (a checkpoint holds every user; asdict's generic deep copy
    made it the worker's longest pause)."""
    data = {name: getattr(user, name) for name in _USER_FIELDS}
    data["decayed"] = list(user.decayed)
    return data


def session_dict(session: SessionState) -> dict[str, Any]:
    """``dataclasses.asdict(session)``: its two dicts (counts, decision features) hold numbers only."""
    data = {name: getattr(session, name) for name in _SESSION_FIELDS}
    data["counts"] = dict(session.counts)
    if session.decision_features is not None:
        data["decision_features"] = dict(session.decision_features)
    return data


def session_from_dict(data: dict[str, Any]) -> SessionState:
    """A session from JSON, where a missing feature (NaN) was written as null."""
    features = data.get("decision_features")
    if features is not None:
        data = {**data, "decision_features": {k: NAN if v is None else v for k, v in features.items()}}
    return SessionState(**data)


def encode_user(user: UserState) -> bytes:
    """A user as the bytes a persistent store or a changelog holds (JSON: inspectable, never pickle)."""
    return orjson.dumps(user_dict(user))


def decode_user(data: bytes) -> UserState:
    return UserState(**orjson.loads(data))


def encode_session(session: SessionState) -> bytes:
    """A session as stored bytes; a missing feature (NaN) is written as null and read back as NaN."""
    return orjson.dumps(session_dict(session))


def decode_session(data: bytes) -> SessionState:
    return session_from_dict(orjson.loads(data))
