"""Reward attribution: purchases join the decisions that preceded them, decided in event time.

A decision stays open for the attribution window. A purchase joins, in this order of preference, the open
decision it names (``decision_id``, even from another session) or the most recent open decision of its own
session (last touch). The reward is margin × revenue − the offer's cost. A decision whose window closes
without a purchase earns 0; the window closes when the event-time watermark passes it, so a replay of the same
recording resolves every decision the same way. Open decisions are plain data: they snapshot with the worker
and, with ``track_changes``, :meth:`RewardLedger.flush` says which opened and which closed since the last flush
(the worker's changelog), which :meth:`RewardLedger.apply` replays into another ledger.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bandits.offers import Catalogue, profit


@dataclass(slots=True)
class OpenDecision:
    decision_id: str
    user_id: str
    session_id: str
    offer: str
    propensity: float
    ts_ms: int
    deadline_ms: int
    context: dict[str, float] = field(default_factory=dict)


def encode_decision(decision: OpenDecision) -> bytes:
    """An open decision as changelog bytes (JSON; a missing feature, NaN, is written as null)."""
    return orjson.dumps(asdict(decision))


def decision_from_dict(raw: dict[str, Any]) -> OpenDecision:
    context = {k: float("nan") if v is None else v for k, v in raw.get("context", {}).items()}
    return OpenDecision(**{**raw, "context": context})


def decode_decision(data: bytes) -> OpenDecision:
    return decision_from_dict(orjson.loads(data))


# A changelog record of the ledger: a decision id and the decision while open, None once closed.
DecisionChange = tuple[str, OpenDecision | None]


@dataclass(frozen=True, slots=True)
class Resolution:
    """A decision's outcome: the reward, and how the purchase (if any) was attributed."""

    decision: OpenDecision
    reward: float
    revenue: float
    purchased: bool
    attribution: str  # "decision_id" | "session" | "window_closed"
    resolved_ms: int
    purchase_event_id: str | None = None


class RewardLedger:
    """Open decisions waiting for a purchase or for their window to close."""

    def __init__(self, catalogue: Catalogue, margin: float, window_ms: int, track_changes: bool = False) -> None:
        self.catalogue = catalogue
        self.margin = margin
        self.window_ms = window_ms
        self.track_changes = track_changes
        self._changed: dict[str, OpenDecision | None] = {}
        self._open: dict[str, OpenDecision] = {}
        self._by_session: dict[str, list[str]] = {}
        self._deadlines: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._open)

    def open(self, decision: OpenDecision) -> None:
        if self.track_changes:
            self._changed[decision.decision_id] = decision
        self._open[decision.decision_id] = decision
        self._by_session.setdefault(decision.session_id, []).append(decision.decision_id)
        heapq.heappush(self._deadlines, (decision.deadline_ms, decision.decision_id))

    def _close(self, decision_id: str) -> OpenDecision:
        decision = self._open.pop(decision_id)
        if self.track_changes:
            self._changed[decision_id] = None
        ids = self._by_session.get(decision.session_id)
        if ids is not None:
            ids.remove(decision_id)
            if not ids:
                del self._by_session[decision.session_id]
        return decision

    def expire(self, watermark_ms: int) -> list[Resolution]:
        """Close, with reward 0, every decision whose window ended before ``watermark_ms``."""
        out: list[Resolution] = []
        while self._deadlines and self._deadlines[0][0] < watermark_ms:
            deadline, decision_id = heapq.heappop(self._deadlines)
            if decision_id in self._open:
                out.append(Resolution(self._close(decision_id), 0.0, 0.0, False, "window_closed", deadline))
        return out

    def on_purchase(
        self, *, event_id: str, session_id: str, ts_ms: int, revenue: float, decision_id: str | None
    ) -> Resolution | None:
        """Attribute a purchase to one open decision, or to none."""
        target: str | None = None
        how = "session"
        named = self._open.get(decision_id) if decision_id else None
        if named is not None and named.ts_ms <= ts_ms <= named.deadline_ms:
            target, how = named.decision_id, "decision_id"
        else:
            candidates = [
                d
                for d in (self._open[i] for i in self._by_session.get(session_id, ()))
                if d.ts_ms <= ts_ms <= d.deadline_ms
            ]
            if candidates:
                target = max(candidates, key=lambda d: (d.ts_ms, d.decision_id)).decision_id
        if target is None:
            return None
        decision = self._close(target)
        reward = profit(self.catalogue[decision.offer], revenue, self.margin)
        return Resolution(decision, reward, revenue, True, how, ts_ms, event_id)

    def flush(self) -> list[DecisionChange]:
        """The decisions opened and closed since the last flush, by id (empty without ``track_changes``)."""
        changes = sorted(self._changed.items(), key=lambda c: c[0])
        self._changed.clear()
        return changes

    def apply(self, changes: Iterable[DecisionChange]) -> None:
        """Replay changelog records in log order (the last record of an id wins). Resolution never depends on
        the order decisions were opened in (ties break by id), so the rebuilt ledger resolves as the original."""
        tracking, self.track_changes = self.track_changes, False
        for decision_id, decision in changes:
            if decision_id in self._open:
                self._close(decision_id)
            if decision is not None:
                self.open(decision)
        self.track_changes = tracking

    def _rebuild(self, decisions: Iterable[OpenDecision]) -> None:
        tracking, self.track_changes = self.track_changes, False
        self._open, self._by_session, self._deadlines = {}, {}, []
        for decision in sorted(decisions, key=lambda d: (d.ts_ms, d.decision_id)):
            self.open(decision)
        self.track_changes = tracking

    def snapshot(self) -> dict[str, Any]:
        return {"open": [asdict(d) for d in sorted(self._open.values(), key=lambda d: d.decision_id)]}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace every open decision (with ``track_changes``, those gone count as closed)."""
        if self.track_changes:
            self._changed.update(dict.fromkeys(self._open))
        self._rebuild(decision_from_dict(raw) for raw in data["open"])  # JSON wrote a missing feature as null
        if self.track_changes:
            self._changed.update(self._open)
