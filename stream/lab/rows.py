"""The lab's input: one labelled row per session that reached a decision point, with its two moments in time.

The events (a simulated scenario, a replayed recording, or an archive) pass once through
:class:`models.behaviour.tracker.StateTracker`, the worker's own state stage, so a row's features are exactly those the
worker computes at the session's first decision point. Each row carries

* ``decision_ms``: when the features were computed, the moment a model is asked (and evaluated);
* ``closed_ms``: when the session closed and its label (did it buy?) became known, the earliest moment any
  strategy may learn from it.

Sessions still open when the events end have no label and give no row (counted in ``unlabelled``). The rows
are ordered by decision time; ``digest`` fingerprints the event order they came from.

**Purchase-only histories** (e.g. the CDNOW log, one ``purchase`` event per order): with ``repurchase_days``
H, each purchase is the decision point and the label is whether the same user buys again within H days after
it; that label is known only H days later, so ``closed_ms`` is the purchase time plus H. Purchases less than H
days before the last event have no label yet and give no row (``unlabelled``).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from models.behaviour.features import FEATURE_NAMES
from models.behaviour.tracker import ClosedSession, StateTracker
from models.snapshots.archive_rows import PRICE_FEATURE_NAMES, ArchivedEvent
from stream.engine.settings import ProcessingSettings


@dataclass(frozen=True)
class Logged:
    """What was shown at a decision point: the offer's terms and its logged propensity; with the simulator, also
    the expected profit of every offer there (its ground truth, for the decision value)."""

    offer_share: float
    offer_flat: float
    propensity: float
    expected_profit: Mapping[str, float] | None = None


@dataclass(frozen=True)
class LabRows:
    """Columns of the labelled rows, ordered by decision time (then session id).

    ``kind`` is ``"intent"`` (features of the decision point) or ``"price"`` (the same plus the offer shown,
    ``offer_share`` and ``offer_flat``, weighted by 1 / logged propensity). Intent rows carry the price rows of
    the same sessions in ``price`` when the decisions were logged.
    """

    session_ids: tuple[str, ...]
    X: npt.NDArray[np.float32]  # (n, len(feature_names)); NaN is a missing feature
    y: npt.NDArray[np.float64]
    decision_ms: npt.NDArray[np.int64]
    closed_ms: npt.NDArray[np.int64]
    events: int
    unlabelled: int
    digest: str
    tz: tzinfo = UTC
    kind: str = "intent"
    feature_names: tuple[str, ...] = FEATURE_NAMES
    weights: npt.NDArray[np.float64] | None = None  # 1 / logged propensity (price rows)
    truth: tuple[Mapping[str, float], ...] | None = None  # each offer's expected profit (simulated price rows)
    price: LabRows | None = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def day_of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self.tz).date()

    def decision_days(self) -> npt.NDArray[np.int32]:
        """Each row's decision day as a date ordinal."""
        return np.array([self.day_of(int(ms)).toordinal() for ms in self.decision_ms], dtype=np.int32)

    def features(self, i: int) -> dict[str, float]:
        """Row ``i`` as the online learners read it (missing features left out)."""
        return row_features(self.X[i], self.feature_names)


def row_features(x: npt.NDArray[np.float32], names: Sequence[str]) -> dict[str, float]:
    """A feature vector as the online learners read it: a dict without the missing (NaN) values."""
    return {n: float(v) for n, v in zip(names, x, strict=True) if v == v}


def collect_rows(
    events: Iterable[Mapping[str, Any]],
    processing: ProcessingSettings,
    tz: tzinfo = UTC,
    repurchase_days: float | None = None,
    decisions: Mapping[str, Logged] | None = None,
) -> LabRows:
    """Replay ``events`` (in the order given) through the state stage and keep one row per closed session.

    With ``repurchase_days`` the decision point is a purchase and the label a repeat purchase within that many
    days (see the module doc). With ``decisions`` (by the event id of the decision point), each session whose
    first decision point was logged also gives a price row (``LabRows.price``).
    """
    collector = RowCollector(processing, tz, repurchase_days, decisions)
    for rec in events:
        collector.add(rec)
    return collector.finish()


class RowCollector:
    """:func:`collect_rows` one event at a time (e.g. inside a closed-loop simulation, whose decisions are
    logged into ``decisions`` as they are made: a session's decision is read when the session closes)."""

    def __init__(
        self,
        processing: ProcessingSettings,
        tz: tzinfo = UTC,
        repurchase_days: float | None = None,
        decisions: Mapping[str, Logged] | None = None,
        on_price_row: Callable[[int], None] | None = None,
    ) -> None:
        if repurchase_days is not None:
            if repurchase_days <= 0:
                raise ValueError(f"repurchase_days must be positive, not {repurchase_days}")
            processing = processing.model_copy(update={"decision_events": ("purchase",)})
        self.tz = tz
        self.repurchase_days = repurchase_days
        self.decisions = decisions
        self.on_price_row = on_price_row  # told the index of each price row as its session closes
        self._tracker = StateTracker(processing, tz, user_vectors=False)
        self._purchases: dict[str, list[int]] = {}  # user -> purchase times, for the repurchase label
        self._first_decision: dict[str, str] = {}  # open session -> event id of its first decision point
        self._users: list[str] = []
        self._ids: list[str] = []
        self._X: list[list[float]] = []
        self._y: list[float] = []
        self._decided: list[int] = []
        self._closed_at: list[int] = []
        self._shown: list[Logged | None] = []
        self._price_index: list[int] = []  # rows (by collection order) whose first decision was logged
        self._digest = hashlib.blake2b(digest_size=16)
        self._last_ms = 0
        self.events = 0

    def add(self, rec: Mapping[str, Any]) -> dict[str, float] | None:
        """Apply one event; the behaviour features when it is a decision point (what a model would score)."""
        event = ArchivedEvent(dict(rec))
        self._digest.update(event.event_id.encode())
        self._digest.update(b"\x00")
        tracked = self._tracker.apply(event)
        if self.decisions is not None and tracked.features is not None:
            self._first_decision.setdefault(tracked.session_id, event.event_id)
        self._last_ms = max(self._last_ms, event.ts_ms)
        if self.repurchase_days is not None and event.type == "purchase":
            self._purchases.setdefault(event.user_id, []).append(event.ts_ms)
        for c in tracked.closed_before:
            self._closed(c)
        for c in tracked.closed_after:
            self._closed(c)
        self.events += 1
        return tracked.features

    def _closed(self, c: ClosedSession) -> None:
        event_id = self._first_decision.pop(c.session_id, None)
        if c.decision_features is None or c.decision_ms is None:
            return
        logged = self.decisions.get(event_id) if self.decisions is not None and event_id is not None else None
        self._shown.append(logged)
        self._ids.append(c.session_id)
        self._users.append(c.user_id)
        self._X.append([c.decision_features[n] for n in FEATURE_NAMES])
        self._y.append(1.0 if c.purchased else 0.0)
        self._decided.append(c.decision_ms)
        self._closed_at.append(c.closed_ms)
        if logged is not None:
            self._price_index.append(len(self._ids) - 1)
            if self.on_price_row is not None:
                self.on_price_row(len(self._price_index) - 1)

    def price_row(self, k: int) -> tuple[dict[str, float], bool, float, int]:
        """Price row ``k`` (in closing order) as an online learner takes it: features, bought, weight, close time."""
        i = self._price_index[k]
        shown = self._shown[i]
        assert shown is not None
        x = row_features(np.array(self._X[i] + [shown.offer_share, shown.offer_flat]), PRICE_FEATURE_NAMES)
        return x, self._y[i] == 1.0, 1.0 / shown.propensity, self._closed_at[i]

    def price_so_far(self) -> LabRows:
        """The price rows of the sessions closed so far, in the order they closed (append-only: a row keeps its
        index as the run goes on, so a strategy can be handed a longer view each night)."""
        return self._price_rows(self._price_index, unlabelled=0)

    def _price_rows(self, order: Sequence[int], unlabelled: int) -> LabRows:
        """The price rows of the collected rows ``order`` (by collection index) whose first decision was logged."""
        logged = [(i, s) for i in order if (s := self._shown[i]) is not None]
        return LabRows(
            session_ids=tuple(self._ids[i] for i, _ in logged),
            X=np.array([self._X[i] + [s.offer_share, s.offer_flat] for i, s in logged], dtype=np.float32).reshape(
                len(logged), len(PRICE_FEATURE_NAMES)
            ),
            y=np.array([self._y[i] for i, _ in logged], dtype=np.float64),
            decision_ms=np.array([self._decided[i] for i, _ in logged], dtype=np.int64),
            closed_ms=np.array([self._closed_at[i] for i, _ in logged], dtype=np.int64),
            events=self.events,
            unlabelled=unlabelled,
            digest=self._digest.hexdigest(),
            tz=self.tz,
            kind="price",
            feature_names=PRICE_FEATURE_NAMES,
            weights=np.array([1.0 / s.propensity for _, s in logged], dtype=np.float64),
            truth=_truth([s for _, s in logged]),
        )

    def finish(self) -> LabRows:
        ids, X, y, decided, closed_at = self._ids, self._X, self._y, self._decided, self._closed_at
        unlabelled = sum(1 for s in self._tracker.store.open_sessions() if s.decision_ms is not None)
        order = sorted(range(len(ids)), key=lambda i: (decided[i], ids[i]))
        if self.repurchase_days is not None:
            horizon = int(self.repurchase_days * 86_400_000)
            for times in self._purchases.values():
                times.sort()
            known = [i for i in order if decided[i] + horizon <= self._last_ms]
            unlabelled += len(order) - len(known)
            order = known
            for i in order:
                times = self._purchases.get(self._users[i], [])
                after = bisect.bisect_right(times, decided[i])  # the first purchase strictly later
                y[i] = 1.0 if after < len(times) and times[after] <= decided[i] + horizon else 0.0
                closed_at[i] = decided[i] + horizon
        price = self._price_rows(order, unlabelled) if self.decisions is not None else None
        return LabRows(
            session_ids=tuple(ids[i] for i in order),
            X=np.array([X[i] for i in order], dtype=np.float32).reshape(len(order), len(FEATURE_NAMES)),
            y=np.array([y[i] for i in order], dtype=np.float64),
            decision_ms=np.array([decided[i] for i in order], dtype=np.int64),
            closed_ms=np.array([closed_at[i] for i in order], dtype=np.int64),
            price=price,
            events=self.events,
            unlabelled=unlabelled,
            digest=self._digest.hexdigest(),
            tz=self.tz,
        )


def _truth(shown: Sequence[Logged]) -> tuple[Mapping[str, float], ...] | None:
    """Every row's expected profit per offer, when the simulator gave it for all of them."""
    truths = [s.expected_profit for s in shown]
    if not truths or any(t is None for t in truths):
        return None
    return tuple(t for t in truths if t is not None)
