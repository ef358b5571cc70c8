"""The lab's input: one labelled row per session that reached a decision point, with its two moments in time.

The events (a simulated scenario, a replayed recording, or an archive) pass once through
:class:`stream.tracking.StateTracker`, the worker's own state stage, so a row's features are exactly those the
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from models.features import FEATURE_NAMES
from models.trainset import ArchivedEvent
from stream.settings import ProcessingSettings
from stream.tracking import ClosedSession, StateTracker


@dataclass(frozen=True)
class LabRows:
    """Columns of the labelled rows, ordered by decision time (then session id)."""

    session_ids: tuple[str, ...]
    X: npt.NDArray[np.float32]  # (n, len(FEATURE_NAMES)); NaN is a missing feature
    y: npt.NDArray[np.float64]
    decision_ms: npt.NDArray[np.int64]
    closed_ms: npt.NDArray[np.int64]
    events: int
    unlabelled: int
    digest: str
    tz: tzinfo = UTC

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
        return {n: float(v) for n, v in zip(FEATURE_NAMES, self.X[i], strict=True) if v == v}


def collect_rows(
    events: Iterable[Mapping[str, Any]],
    processing: ProcessingSettings,
    tz: tzinfo = UTC,
    repurchase_days: float | None = None,
) -> LabRows:
    """Replay ``events`` (in the order given) through the state stage and keep one row per closed session.

    With ``repurchase_days`` the decision point is a purchase and the label a repeat purchase within that many
    days (see the module doc).
    """
    if repurchase_days is not None:
        if repurchase_days <= 0:
            raise ValueError(f"repurchase_days must be positive, not {repurchase_days}")
        processing = processing.model_copy(update={"decision_events": ("purchase",)})
    tracker = StateTracker(processing, tz, user_vectors=False)
    purchases: dict[str, list[int]] = {}  # user -> purchase times, for the repurchase label
    users: list[str] = []
    last_ms = 0
    ids: list[str] = []
    X: list[list[float]] = []
    y: list[float] = []
    decided: list[int] = []
    closed_at: list[int] = []
    digest = hashlib.blake2b(digest_size=16)
    count = 0

    def closed(c: ClosedSession) -> None:
        if c.decision_features is None or c.decision_ms is None:
            return
        ids.append(c.session_id)
        users.append(c.user_id)
        X.append([c.decision_features[n] for n in FEATURE_NAMES])
        y.append(1.0 if c.purchased else 0.0)
        decided.append(c.decision_ms)
        closed_at.append(c.closed_ms)

    for rec in events:
        event = ArchivedEvent(dict(rec))
        digest.update(event.event_id.encode())
        digest.update(b"\x00")
        tracked = tracker.apply(event)
        last_ms = max(last_ms, event.ts_ms)
        if repurchase_days is not None and event.type == "purchase":
            purchases.setdefault(event.user_id, []).append(event.ts_ms)
        for c in tracked.closed_before:
            closed(c)
        for c in tracked.closed_after:
            closed(c)
        count += 1
    unlabelled = sum(1 for s in tracker.store.open_sessions() if s.decision_ms is not None)
    order = sorted(range(len(ids)), key=lambda i: (decided[i], ids[i]))
    if repurchase_days is not None:
        horizon = int(repurchase_days * 86_400_000)
        for times in purchases.values():
            times.sort()
        known = [i for i in order if decided[i] + horizon <= last_ms]
        unlabelled += len(order) - len(known)
        order = known
        for i in order:
            times = purchases.get(users[i], [])
            after = bisect.bisect_right(times, decided[i])  # the first purchase strictly later
            y[i] = 1.0 if after < len(times) and times[after] <= decided[i] + horizon else 0.0
            closed_at[i] = decided[i] + horizon
    return LabRows(
        session_ids=tuple(ids[i] for i in order),
        X=np.array([X[i] for i in order], dtype=np.float32).reshape(len(order), len(FEATURE_NAMES)),
        y=np.array([y[i] for i in order], dtype=np.float64),
        decision_ms=np.array([decided[i] for i in order], dtype=np.int64),
        closed_ms=np.array([closed_at[i] for i in order], dtype=np.int64),
        events=count,
        unlabelled=unlabelled,
        digest=digest.hexdigest(),
        tz=tz,
    )
