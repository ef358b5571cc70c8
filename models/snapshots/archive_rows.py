"""Training rows for the nightly snapshot, rebuilt from the archive with the worker's own state tracker.

The archive's events are replayed day by day, oldest first, through :class:`models.behaviour.tracker.StateTracker`, the
same code the worker runs, so each row's features are exactly those the worker computed for that decision point
(given the same event order: the archive returns a day sorted by time, then id; a worker that saw events out
of order may differ slightly for them). Every day up to ``as_of`` is replayed, including those older than the
sample, because a user's history features need the whole history; only the rows go through the recency
sample. One day of events is in memory at a time; the rows kept are the sample.

Rows:

* **intent** — one per session that reached a decision point, labelled when the session closes (did it buy?),
  with the behaviour features of its first decision point; its day is that decision point's day.
* **price** — one per archived decision whose session closed: the same features plus the offer shown
  (``offer_share``, ``offer_flat``), labelled the same way, weighted by the inverse of the logged propensity
  (capped at :data:`MAX_PROPENSITY_WEIGHT`) on top of the sample weight. Decisions exist only for days a worker
  (or replay) ran with an archive; imported history yields intent rows only.

Sessions still open when the archive ends have no label yet and give no row. A session is sampled as a unit
(its id is the sampling key), so its intent and price rows are in or out together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from pathlib import Path
from typing import Any

from models.behaviour.features import FEATURE_NAMES
from models.behaviour.settings import SessionSettings
from models.behaviour.tracker import ClosedSession, StateTracker
from models.history.archive import archive_days, day_of, iter_archive
from models.history.sampling import RecencySampler
from models.learners.price_sensitivity import OFFER_FLAT, OFFER_SHARE
from models.snapshots.training import TrainingSet

log = logging.getLogger(__name__)

PRICE_FEATURE_NAMES: tuple[str, ...] = (*FEATURE_NAMES, OFFER_SHARE, OFFER_FLAT)
MAX_PROPENSITY_WEIGHT = 20.0


class ArchivedEvent:
    """An archived event as the state stage reads it. It was validated when it was archived, so it is not
    validated again (a pydantic model per event would cost more than everything else the trainer does)."""

    __slots__ = (
        "cart_value",
        "decision_id",
        "device",
        "event_id",
        "price",
        "quantity",
        "referrer",
        "revenue",
        "session_id",
        "ts_ms",
        "type",
        "user_id",
    )

    def __init__(self, r: dict[str, Any]) -> None:
        get = r.get
        self.event_id: str = r["event_id"]
        self.ts_ms: int = r["ts"]
        self.user_id: str = r["user_id"]
        self.type: str = r["type"]
        self.session_id: str | None = get("session_id")
        self.price: float | None = get("price")
        self.quantity: int | None = get("quantity")
        self.cart_value: float | None = get("cart_value")
        self.revenue: float | None = get("revenue")
        self.device: str | None = get("device")
        self.referrer: str | None = get("referrer")
        self.decision_id: str | None = get("decision_id")


@dataclass(slots=True)
class TrainingData:
    """What the archive gave: the sampled rows of each model and how they were drawn."""

    intent: TrainingSet
    price: TrainingSet
    sampler: RecencySampler
    events: int = 0
    decisions: int = 0
    days_replayed: int = 0
    first_day: date | None = None
    last_day: date | None = None
    unlabelled_sessions: int = 0
    features_seen: dict[str, dict[str, float]] = field(default_factory=dict)  # only when asked (tests)

    def report(self) -> dict[str, Any]:
        return {
            "events_replayed": self.events,
            "decisions_read": self.decisions,
            "days_replayed": self.days_replayed,
            "archive_first_day": self.first_day.isoformat() if self.first_day else None,
            "archive_last_day": self.last_day.isoformat() if self.last_day else None,
            "unlabelled_sessions": self.unlabelled_sessions,
            "rows": {"intent": len(self.intent), "price": len(self.price)},
        }


def build_training_data(
    archive: str | Path,
    sampler: RecencySampler,
    sessions: SessionSettings,
    offer_terms: Mapping[str, Mapping[str, float]],
    tz: tzinfo = UTC,
    keep_features: bool = False,
    on_day: Callable[[date, int], None] | None = None,
) -> TrainingData:
    """Replay the archive up to ``sampler.as_of`` and collect the sampled intent and price rows.

    ``offer_terms`` (share and flat fee by offer name: the catalogue's) price the archived decisions that logged
    no terms of their own. ``keep_features`` also records the features of every decision point by event id (for
    tests).
    """
    as_of = sampler.as_of
    data = TrainingData(TrainingSet(FEATURE_NAMES), TrainingSet(PRICE_FEATURE_NAMES), sampler)
    tracker = StateTracker(sessions, tz, user_vectors=False)
    pending: dict[str, list[dict[str, Any]]] = {}  # session id -> its sampled decisions, until it closes
    weights: dict[str, float] = {}  # session id -> sample weight, decided once per session
    decisions = _decisions_by_day(archive, as_of, offer_terms)
    upcoming = next(decisions, None)
    days = [d for d in archive_days(archive, "events") if d <= as_of]
    data.first_day = days[0] if days else None
    data.last_day = days[-1] if days else None

    def weight_of(session_id: str, decision_ms: int) -> float | None:
        if session_id not in weights:
            w = sampler.keep(session_id, day_of(decision_ms))
            weights[session_id] = 0.0 if w is None else w
        w = weights[session_id]
        return w if w > 0.0 else None

    def closed(c: ClosedSession) -> None:
        if c.decision_features is None or c.decision_ms is None:
            return
        w = weight_of(c.session_id, c.decision_ms)
        weights.pop(c.session_id, None)
        shown = pending.pop(c.session_id, [])
        if w is None:
            return
        day = day_of(c.decision_ms)
        y = 1.0 if c.purchased else 0.0
        data.intent.append([c.decision_features[n] for n in FEATURE_NAMES], y, w, day)
        for d in shown:
            share, flat = d["offer_share"], d["offer_flat"]
            ips = min(1.0 / d["propensity"], MAX_PROPENSITY_WEIGHT)
            row = [c.decision_features[n] for n in FEATURE_NAMES] + [share, flat]
            data.price.append(row, y, w * ips, day)

    for day, records in iter_archive(archive, "events", end=as_of):
        while upcoming is not None and upcoming[0] <= day:  # decisions are read in step with the events
            for d in upcoming[1]:
                pending.setdefault(d["session_id"], []).append(d)
                data.decisions += 1
            upcoming = next(decisions, None)
        for rec in records:
            tracked = tracker.apply(ArchivedEvent(rec))
            for c in tracked.closed_before:
                closed(c)
            if keep_features and tracked.features is not None:
                data.features_seen[tracked.event.event_id] = tracked.features
            for c in tracked.closed_after:
                closed(c)
        data.events += len(records)
        data.days_replayed += 1
        if on_day is not None:
            on_day(day, len(records))
    data.unlabelled_sessions = sum(1 for s in tracker.store.open_sessions() if s.decision_ms is not None)
    return data


def _decisions_by_day(
    archive: str | Path, as_of: date, catalogue: Mapping[str, Mapping[str, float]]
) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """The archived decisions up to ``as_of``, a day at a time, in the compact form a price row needs (session,
    offer terms, propensity). The terms are those logged with the decision (``offer_terms``), else the
    configured catalogue's. Only the decisions of sessions still open stay in memory."""
    for day, records in _iter_decisions(archive, as_of):
        rows = []
        for r in records:
            terms = r.get("offer_terms") or catalogue.get(r["offer"])
            if terms is None:
                log.warning("decision %s names offer %r, in no catalogue: no price row", r["decision_id"], r["offer"])
                continue
            rows.append(
                {
                    "session_id": r["session_id"],
                    "offer_share": float(terms["share"]),
                    "offer_flat": 1.0 if terms["flat_fee"] > 0 else 0.0,
                    "propensity": float(r["propensity"]),
                }
            )
        yield day, rows


def _iter_decisions(archive: str | Path, as_of: date) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    if not (Path(archive) / "decisions").is_dir():
        return
    yield from iter_archive(archive, "decisions", end=as_of)
