"""The one feature definition, computed from per-user and per-session state.

The worker calls it at decision points; later the nightly trainer and the strategy lab call the same function
on rebuilt state, so there is no train/serve skew. Changing what it returns means bumping
:data:`FEATURES_VERSION`, which every decision logs.

>>> from stream.state import SessionState, UserState
>>> s = SessionState("s1", "u1", started_ms=0, last_ms=90_000, device="mobile", cart_value=42.0,
...                  counts={"product_view": 3, "add_to_cart": 1})
>>> f = session_features(s, UserState("u1", first_ms=0, last_ms=90_000, sessions=2), event_ms=90_000)
>>> f["cart_value"], f["product_views"], f["mobile"], f["session_minutes"]
(42.0, 3.0, 1.0, 1.5)
"""

from __future__ import annotations

from stream.state import SessionState, UserState

FEATURES_VERSION = "session-v1"

_DAY_MS = 86_400_000


def session_features(session: SessionState, user: UserState, event_ms: int) -> dict[str, float]:
    """Behaviour of this session and this user so far, as named floats."""
    avg_price = session.price_sum / session.price_n if session.price_n else 0.0
    return {
        "page_views": float(session.count("page_view")),
        "product_views": float(session.count("product_view")),
        "searches": float(session.count("search")),
        "adds": float(session.count("add_to_cart")),
        "removes": float(session.count("remove_from_cart")),
        "checkouts": float(session.count("checkout_start")),
        "cart_value": round(session.cart_value, 2),
        "avg_price_viewed": round(avg_price, 2),
        "session_minutes": round((event_ms - session.started_ms) / 60_000, 3),
        "mobile": 1.0 if session.device == "mobile" else 0.0,
        "hour_of_day": float((event_ms % _DAY_MS) // 3_600_000),
        "user_sessions": float(user.sessions),
        "user_purchases": float(user.purchases),
        "user_revenue": round(user.revenue, 2),
        "days_since_first_seen": round((event_ms - user.first_ms) / _DAY_MS, 3),
    }
