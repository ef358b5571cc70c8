"""Funnel counters: what the simulation has emitted so far, and the rates the calibration test checks.

Rates are per started session: ``add_to_cart_rate`` (sessions with at least one add), ``conversion_rate``
(sessions with a purchase), ``cart_abandonment`` (carting sessions without a purchase, over carting
sessions) and ``mobile_share``. Sessions still in progress count as started and not (yet) converted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bandits.offers import Offer, profit

NO_OFFER = "no_offer"


class FunnelStats:
    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.events = 0
        self.by_type: Counter[str] = Counter()
        self.devices: Counter[str] = Counter()
        self.purchases_by_device: Counter[str] = Counter()
        self.sessions = 0
        self.finished_sessions = 0
        self.carting_sessions = 0
        self.purchases = 0
        self.revenue = 0.0
        self.reward = 0.0
        self.decision_points = 0
        self.offers_shown: Counter[str] = Counter()
        self.by_offer: dict[str, dict[str, float]] = {}

    def session_started(self, device: str) -> None:
        self.sessions += 1
        self.devices[device] += 1

    def purchased(self, offer: Offer | None, value: float, device: str) -> None:
        self.purchases_by_device[device] += 1
        name = offer.name if offer is not None else NO_OFFER
        reward = profit(offer, value, self.margin) if offer is not None else round(self.margin * value, 6)
        self.purchases += 1
        self.revenue += value
        self.reward += reward
        row = self.by_offer.setdefault(name, {"purchases": 0, "revenue": 0.0, "reward": 0.0})
        row["purchases"] += 1
        row["revenue"] += value
        row["reward"] += reward

    def as_dict(self) -> dict[str, Any]:
        n = max(self.sessions, 1)
        by_offer = {
            name: {
                "shown": self.offers_shown.get(name, 0),
                "purchases": int(row["purchases"]),
                "revenue": round(row["revenue"], 2),
                "reward": round(row["reward"], 4),
            }
            for name, row in self.by_offer.items()
        }
        for name, shown in self.offers_shown.items():
            by_offer.setdefault(name, {"shown": shown, "purchases": 0, "revenue": 0.0, "reward": 0.0})
        return {
            "sessions": self.sessions,
            "active_sessions": self.sessions - self.finished_sessions,
            "events": self.events,
            "events_by_type": dict(sorted(self.by_type.items())),
            "carting_sessions": self.carting_sessions,
            "purchases": self.purchases,
            "add_to_cart_rate": self.carting_sessions / n,
            "conversion_rate": self.purchases / n,
            "cart_abandonment": 1.0 - self.purchases / max(self.carting_sessions, 1),
            "mobile_share": self.devices.get("mobile", 0) / n,
            "devices": dict(sorted(self.devices.items())),
            "conversion_by_device": {
                d: self.purchases_by_device.get(d, 0) / n_d for d, n_d in sorted(self.devices.items())
            },
            "revenue": round(self.revenue, 2),
            "reward": round(self.reward, 4),
            "decision_points": self.decision_points,
            "offers_shown": dict(sorted(self.offers_shown.items())),
            "reward_by_offer": dict(sorted(by_offer.items())),
        }
