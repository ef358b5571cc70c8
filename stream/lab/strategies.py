"""Update strategies: how a purchase-intent model is kept fresh, one family behind one protocol.

Every strategy sees the same stream, a day at a time (:class:`Day`): during the day it forecasts each session
at its decision point (:meth:`Strategy.predict`), and at midnight it may train (:meth:`Strategy.nightly`) on
rows whose labels were known by then. A row decided on day *d* is forecast by models trained at the latest on
the night of *d − 1*, and an online learner learns a row only when its session closes, after the forecast: no
strategy is evaluated on data it trained on. Each strategy counts any forecast of a row it already learned
(``leaks``, expected 0) and fingerprints the stream it was shown (``stream_digest``, equal for all).

* ``full``: nightly XGBoost from scratch on every labelled row so far;
* ``sampled``: nightly from scratch on the recency sample (tiers as ``offerstream retrain``, default
  100 % of the last 30 days, 50 % of days 31-90, 10 % of days 91-180, weighted by 1/rate);
* ``warm``: nightly fine-tune of the previous booster on the rows labelled since it last trained (the day's), as
  ``retrain --mode warm`` does it (:func:`models.snapshots.fine_tune.fine_tune`): one tree per 50 new rows, at
  most 10, a leaf refresh once the booster holds ``max_trees``, nothing while fewer than ``warm_min_rows`` rows
  have come in (they wait for a later night). Until it has learned from ``warm_min_rows`` rows in all it trains
  from scratch on everything labelled, as the first snapshot is trained on the history there is;
* ``online``: the worker's River intent learner, learning each session as it closes, no snapshot;
* ``hybrid``: the online learner and the ``sampled`` snapshot together, as the worker runs them; its forecast
  is their equal-weight blend in log-odds (the snapshot's alone before the learner has seen a session);
* ``base_rate``: knowing nothing: every session gets the share of the sessions labelled so far that bought
  (weighted as the snapshots' rows are), updated each night. A model is worth its compute only where it beats
  this (:func:`stream.lab.backtest.recommendation` never recommends one that does not).

With ``retrain_every`` N the snapshot strategies train N nights after their last training (weekly: 7), and
the first model as soon as they can; with drift-triggered retraining also the night after the drift watch (an
online intent learner's ADWIN on its own error) raised an alarm. XGBoost uses the nightly retrain's parameters
(``models.snapshots.retrain.NIGHTLY_PARAMS``; the lab runs it on one thread), Platt-scaled as the nightly
retrain's (:mod:`models.calibration`; a fine-tuned booster is not). Training compute is measured per night:
CPU seconds (``time.process_time``), rows, and, on Linux, the peak resident memory added while training
(``/proc/self/clear_refs`` resets the high-water mark first); the online learner's compute is the CPU its
learning took during the day.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from models.behaviour.state import DAY_MS
from models.calibration import Platt
from models.history.sampling import DEFAULT_TIERS, RecencySampler, Tier
from models.learners.factory import make_learners
from models.snapshots.fine_tune import fine_tune, worth_continuing
from models.snapshots.retrain import NIGHTLY_PARAMS
from models.snapshots.training import TrainParams, train
from stream.lab.rows import LabRows, row_features

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Day:
    """One day of the stream: the rows decided in it, the rows whose sessions closed in it (by close time)."""

    day: date
    start_ms: int
    end_ms: int
    decided: IntArray
    closed: IntArray


@dataclass(frozen=True)
class Training:
    """What one night's (or one day's online) training used."""

    rows: int
    cpu_s: float
    peak_mb: float | None = None
    trees: int | None = None
    note: str | None = None


class Strategy(ABC):
    """A way of keeping the intent model fresh. Subclasses forecast a day and train at night."""

    name: str = ""

    def __init__(self, rows: LabRows, seed: int, held_out: npt.NDArray[np.bool_] | None = None) -> None:
        self.rows = rows
        self.seed = seed
        # rows no strategy may learn (the forgetting probe): forecast, never trained on
        self.held_out = held_out if held_out is not None else np.zeros(rows.n, dtype=bool)
        self.learned = np.zeros(rows.n, dtype=bool)
        self.leaks = 0
        self._stream = hashlib.blake2b(digest_size=16)

    def observe(self, day: Day) -> None:
        """Record what the stream showed: the day, its decisions and its closes, in order."""
        self._stream.update(day.day.isoformat().encode())
        self._stream.update(day.decided.tobytes())
        self._stream.update(day.closed.tobytes())

    @property
    def stream_digest(self) -> str:
        return self._stream.hexdigest()

    def _check_unseen(self, idx: IntArray) -> None:
        self.leaks += int(np.count_nonzero(self.learned[idx]))

    def _labelled_by(self, day: Day) -> IntArray:
        """Rows whose sessions closed (their label known) by the end of ``day``."""
        return np.flatnonzero(self.rows.closed_ms < day.end_ms)

    def request_retrain(self) -> None:  # noqa: B027 - a no-op unless the strategy has a snapshot
        """Train tonight whatever the cadence (a drift alarm); strategies without a snapshot ignore it."""

    def extend(self, rows: LabRows) -> None:
        """Hand the strategy a longer view of a growing stream (a closed loop): ``rows`` starts with the rows it had."""
        if rows.n < self.rows.n:
            raise ValueError("a strategy's rows can only grow")
        grow = rows.n - self.rows.n
        self.rows = rows
        self.held_out = np.concatenate([self.held_out, np.zeros(grow, dtype=bool)])
        self.learned = np.concatenate([self.learned, np.zeros(grow, dtype=bool)])

    def learn_now(self, x: dict[str, float], bought: bool, weight: float, ts_ms: int) -> None:  # noqa: B027
        """A session closed during a closed loop: online learners learn it now; snapshots wait for the night."""

    @abstractmethod
    def predict(self, day: Day) -> npt.NDArray[np.float64] | None:
        """P(buy) for each of ``day.decided``, each made before learning that row; None without a model yet."""

    @abstractmethod
    def nightly(self, day: Day) -> Training | None:
        """Train at the end of ``day`` on what was labelled by then; None when it trains nothing."""

    def probe(self, idx: IntArray) -> npt.NDArray[np.float64] | None:
        """P(buy) for rows ``idx`` (held-out, from any time) by the model as it stands, learning nothing."""
        self._check_unseen(idx)
        return self.score(self.rows.X[idx])

    @abstractmethod
    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | None:
        """P(buy) for feature rows ``X`` (e.g. a decision point under each offer) as the model stands; no check."""


class SnapshotStrategy(Strategy):
    """A nightly XGBoost snapshot; subclasses choose the rows (and whether to continue the last booster)."""

    def __init__(
        self,
        rows: LabRows,
        seed: int,
        params: TrainParams = NIGHTLY_PARAMS,
        held_out: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        super().__init__(rows, seed, held_out)
        self.params = params
        self.booster: xgb.Booster | None = None
        self.calibration: Platt | None = None  # the booster's Platt scaling (None: its probabilities as they are)
        self.retrain_every = 1  # nights between trainings (7: weekly); the first model is trained at once
        self._nights = 0  # nights since the last training
        self._due = False  # a retrain was requested for tonight
        self._trained_until_ms: int | None = None  # end of the last training's window
        self._rows_learned = 0  # rows the booster learned from: its scratch training's and every fine-tune's

    @property
    def rows_learned(self) -> int:
        """Rows the booster has learned from: its scratch training's and every fine-tune's since."""
        return self._rows_learned

    def predict(self, day: Day) -> npt.NDArray[np.float64] | None:
        return self.probe(day.decided)

    def probe(self, idx: IntArray) -> npt.NDArray[np.float64] | None:
        return None if self.booster is None else super().probe(idx)

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | None:
        if self.booster is None:
            return None
        if len(X) == 0:
            return np.zeros(0)
        data = xgb.DMatrix(X, feature_names=list(self.rows.feature_names), missing=np.nan)
        if self.calibration is not None:
            return self.calibration.apply(self.booster.predict(data, output_margin=True)).astype(np.float64)
        return self.booster.predict(data).astype(np.float64)

    @abstractmethod
    def training_rows(self, day: Day) -> tuple[IntArray, npt.NDArray[np.float32], xgb.Booster | None]:
        """The rows to train on tonight, their weights, and the booster to continue (None: from scratch)."""

    def nightly(self, day: Day) -> Training | None:
        self._nights += 1  # nights since the last training
        if self.booster is not None and self._nights < self.retrain_every and not self._due:
            return None
        idx, w, base = self.training_rows(day)
        keep = ~self.held_out[idx]
        idx, w = idx[keep], w[keep]
        if self.rows.weights is not None:  # price rows: inverse propensity, times any sample weight
            w = (w * self.rows.weights[idx]).astype(np.float32)
        y = self.rows.y[idx]
        if len(idx) == 0 or len(np.unique(y)) < 2:
            return Training(rows=len(idx), cpu_s=0.0, note="nothing to learn: one class or no rows")
        X, names = self.rows.X[idx], self.rows.feature_names
        with _peak_memory() as peak:
            if base is None:
                result = train(X, y, w, names, self.params)
            else:
                result = fine_tune(X, y, w, names, self.params, base)
        if result.action == "wait":  # too few rows to learn from: they stay for a later night
            return Training(rows=0, cpu_s=result.cpu_s, trees=result.rounds, note=result.note)
        self.booster = result.booster
        self.calibration = result.calibration  # a fine-tuned booster has none: its trees changed
        self._rows_learned = result.rows + (self._rows_learned if base is not None else 0)
        self.learned[idx] = True
        self._trained_until_ms = day.end_ms
        self._nights = 0
        self._due = False
        return Training(rows=result.rows, cpu_s=result.cpu_s, peak_mb=peak(), trees=result.rounds, note=result.note)

    def request_retrain(self) -> None:
        self._due = True


class Full(SnapshotStrategy):
    name = "full"

    def training_rows(self, day: Day) -> tuple[IntArray, npt.NDArray[np.float32], xgb.Booster | None]:
        idx = self._labelled_by(day)
        return idx, np.ones(len(idx), dtype=np.float32), None


class Sampled(SnapshotStrategy):
    name = "sampled"

    def __init__(
        self,
        rows: LabRows,
        seed: int,
        params: TrainParams = NIGHTLY_PARAMS,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        held_out: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        super().__init__(rows, seed, params, held_out)
        self.tiers = tuple(tiers)
        self._days = rows.decision_days()

    def extend(self, rows: LabRows) -> None:
        super().extend(rows)
        self._days = rows.decision_days()

    def training_rows(self, day: Day) -> tuple[IntArray, npt.NDArray[np.float32], xgb.Booster | None]:
        sampler = RecencySampler(day.day, self.tiers, seed=self.seed)
        kept, weights = [], []
        for i in self._labelled_by(day):
            w = sampler.keep(self.rows.session_ids[i], date.fromordinal(int(self._days[i])))
            if w is not None:
                kept.append(i)
                weights.append(w)
        return np.array(kept, dtype=np.int64), np.array(weights, dtype=np.float32), None


class Warm(SnapshotStrategy):
    name = "warm"

    def training_rows(self, day: Day) -> tuple[IntArray, npt.NDArray[np.float32], xgb.Booster | None]:
        """Rows labelled since the last training (the day's, nightly), to fine-tune its booster; every row labelled
        so far, from scratch, while the booster has learned from too few rows to be worth continuing."""
        idx = self._labelled_by(day)
        if self.booster is None or not worth_continuing(self.rows_learned, self.params):
            return idx, np.ones(len(idx), dtype=np.float32), None
        if self._trained_until_ms is not None:
            idx = idx[self.rows.closed_ms[idx] >= self._trained_until_ms]
        return idx, np.ones(len(idx), dtype=np.float32), self.booster


class Online(Strategy):
    name = "online"

    def __init__(
        self,
        rows: LabRows,
        seed: int,
        held_out: npt.NDArray[np.bool_] | None = None,
        drift_warmup_days: float = 0.0,
    ) -> None:
        super().__init__(rows, seed, held_out)
        # the worker's learner of the same model: intent, or price sensitivity on price rows
        self.learner = make_learners(seed)["price_sensitivity" if rows.kind == "price" else "intent"]
        self._learn_cpu = 0.0
        self._learned_today = 0
        self.drift_alarm_ms: list[int] = []  # event times of the learner's ADWIN alarms (drift points)
        # as in the worker (processing.drift_warmup_days): the monitor ignores sessions closed before the stream's
        # history features have filled, counted from its first decision
        first = int(rows.decision_ms.min()) if rows.n else 0
        self._watch_from_ms = first + int(drift_warmup_days * DAY_MS)

    def predict(self, day: Day) -> npt.NDArray[np.float64]:
        """Walk the day in time order: forecast at each decision, learn at each close (a decision first on a tie)."""
        rows = self.rows
        timeline = sorted(
            [(int(rows.decision_ms[i]), 0, j, int(i)) for j, i in enumerate(day.decided)]
            + [(int(rows.closed_ms[i]), 1, -1, int(i)) for i in day.closed]
        )
        out = np.empty(len(day.decided), dtype=np.float64)
        for _, kind, j, i in timeline:
            if kind == 0:
                self._check_unseen(np.array([i]))
                out[j] = self._forecast(rows.features(i))
            elif not self.held_out[i]:
                alarms = self.learner.drift.alarms
                started = time.process_time()
                weight = float(rows.weights[i]) if rows.weights is not None else 1.0
                ts_ms = int(rows.closed_ms[i])
                watch = ts_ms >= self._watch_from_ms
                self.learner.learn_one(rows.features(i), bool(rows.y[i]), weight=weight, ts_ms=ts_ms, watch=watch)
                self._learn_cpu += time.process_time() - started
                if self.learner.drift.alarms > alarms:
                    self.drift_alarm_ms.append(int(rows.closed_ms[i]))
                self.learned[i] = True
                self._learned_today += 1
        return out

    def nightly(self, day: Day) -> Training:
        done = Training(rows=self._learned_today, cpu_s=self._learn_cpu, note="learned as sessions closed")
        self._learn_cpu, self._learned_today = 0.0, 0
        return done

    def learn_now(self, x: dict[str, float], bought: bool, weight: float, ts_ms: int) -> None:
        started = time.process_time()
        self.learner.learn_one(x, bought, weight=weight, ts_ms=ts_ms, watch=ts_ms >= self._watch_from_ms)
        self._learn_cpu += time.process_time() - started
        self._learned_today += 1

    def _forecast(self, x: dict[str, float]) -> float:
        """P(buy): the intent learner's score, or the price learner's purchase probability under the row's offer
        (its ``predict_one`` is a lift)."""
        if self.rows.kind == "price":
            share, flat = x.get("offer_share", 0.0), x.get("offer_flat", 0.0)
            return float(self.learner.predict_purchase(x, offer_share=share, offer_flat=flat))  # type: ignore[attr-defined]
        return self.learner.predict_one(x)

    def probe(self, idx: IntArray) -> npt.NDArray[np.float64]:
        self._check_unseen(idx)
        return self.score(self.rows.X[idx])

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        names = self.rows.feature_names
        return np.array([self._forecast(row_features(x, names)) for x in X], dtype=np.float64)


class Hybrid(Strategy):
    name = "hybrid"

    def __init__(
        self,
        rows: LabRows,
        seed: int,
        params: TrainParams = NIGHTLY_PARAMS,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        held_out: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        super().__init__(rows, seed, held_out)
        self.online = Online(rows, seed, held_out)
        self.snapshot = Sampled(rows, seed, params, tiers, held_out)

    def predict(self, day: Day) -> npt.NDArray[np.float64] | None:
        return self._blend(self.online.predict(day), self.snapshot.predict(day))

    def request_retrain(self) -> None:
        self.snapshot.request_retrain()

    def extend(self, rows: LabRows) -> None:
        super().extend(rows)
        self.online.extend(rows)
        self.snapshot.extend(rows)

    def learn_now(self, x: dict[str, float], bought: bool, weight: float, ts_ms: int) -> None:
        self.online.learn_now(x, bought, weight, ts_ms)

    def probe(self, idx: IntArray) -> npt.NDArray[np.float64] | None:
        return self._blend(self.online.probe(idx), self.snapshot.probe(idx))

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | None:
        return self._blend(self.online.score(X), self.snapshot.score(X))

    def _blend(
        self, p_online: npt.NDArray[np.float64], p_snapshot: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.float64]:
        self.leaks = self.online.leaks + self.snapshot.leaks
        self.learned = self.online.learned | self.snapshot.learned
        if p_snapshot is None:
            return p_online
        return _sigmoid(0.5 * (_logit(p_online) + _logit(p_snapshot)))

    def nightly(self, day: Day) -> Training:
        online = self.online.nightly(day)
        snapshot = self.snapshot.nightly(day)
        if snapshot is None:
            return online
        peak = snapshot.peak_mb
        return Training(
            rows=online.rows + snapshot.rows, cpu_s=online.cpu_s + snapshot.cpu_s, peak_mb=peak, trees=snapshot.trees
        )


class BaseRate(Strategy):
    """Every forecast is the (weighted) share of the labelled sessions that bought, as of the last midnight."""

    name = "base_rate"

    def __init__(self, rows: LabRows, seed: int, held_out: npt.NDArray[np.bool_] | None = None) -> None:
        super().__init__(rows, seed, held_out)
        self.rate: float | None = None

    def predict(self, day: Day) -> npt.NDArray[np.float64] | None:
        return self.probe(day.decided)

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | None:
        return None if self.rate is None else np.full(len(X), self.rate, dtype=np.float64)

    def nightly(self, day: Day) -> Training | None:
        started = time.process_time()
        idx = self._labelled_by(day)
        idx = idx[~self.held_out[idx]]
        if len(idx) == 0:
            return None
        w = self.rows.weights[idx] if self.rows.weights is not None else np.ones(len(idx))
        rate = float(np.average(self.rows.y[idx], weights=w)) if w.sum() > 0 else 0.0
        self.rate = min(max(rate, 1e-6), 1.0 - 1e-6)  # never certain: a log loss stays finite
        self.learned[idx] = True
        return Training(rows=len(idx), cpu_s=time.process_time() - started, note="the share that bought")


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "full": Full,
    "sampled": Sampled,
    "warm": Warm,
    "online": Online,
    "hybrid": Hybrid,
    "base_rate": BaseRate,
}


def make_strategy(
    name: str,
    rows: LabRows,
    seed: int,
    params: TrainParams = NIGHTLY_PARAMS,
    tiers: Sequence[Tier] = DEFAULT_TIERS,
    held_out: npt.NDArray[np.bool_] | None = None,
    retrain_every: int = 1,
) -> Strategy:
    """A fresh strategy by name; ``held_out`` rows (the forgetting probe) are never trained on; snapshots train
    every ``retrain_every`` nights."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if retrain_every < 1:
        raise ValueError(f"retrain_every must be at least 1 night, not {retrain_every}")
    if name in ("online", "base_rate"):
        return STRATEGIES[name](rows, seed, held_out)
    strategy = (
        STRATEGIES[name](rows, seed, params, tiers, held_out)
        if name in ("sampled", "hybrid")
        else STRATEGIES[name](rows, seed, params, held_out=held_out)
    )
    snapshot = strategy.snapshot if isinstance(strategy, Hybrid) else strategy
    if isinstance(snapshot, SnapshotStrategy):
        snapshot.retrain_every = retrain_every
    return strategy


def days_of(rows: LabRows) -> list[Day]:
    """The stream cut into calendar days (in ``rows.tz``), from the first decision to the last close."""
    if rows.n == 0:
        return []
    first = rows.day_of(int(rows.decision_ms.min()))
    last = rows.day_of(int(max(rows.decision_ms.max(), rows.closed_ms.max())))
    close_order = np.argsort(rows.closed_ms, kind="stable")
    out = []
    d = first
    while d <= last:
        start = _midnight_ms(d, rows)
        end = _midnight_ms(d + timedelta(days=1), rows)
        decided = np.flatnonzero((rows.decision_ms >= start) & (rows.decision_ms < end))
        in_day = (rows.closed_ms[close_order] >= start) & (rows.closed_ms[close_order] < end)
        out.append(Day(d, start, end, decided.astype(np.int64), close_order[in_day].astype(np.int64)))
        d += timedelta(days=1)
    return out


def _midnight_ms(d: date, rows: LabRows) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=rows.tz).timestamp() * 1000)


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-z))


class _peak_memory:
    """``with _peak_memory() as peak: ...; peak()`` -> MB of resident memory added at the peak (None off Linux)."""

    def __enter__(self) -> Callable[[], float | None]:
        self._base = _reset_peak()
        return self._result

    def __exit__(self, *exc: object) -> None:
        self._peak = _status_mb("VmHWM") if self._base is not None else None

    def _result(self) -> float | None:
        if self._base is None or self._peak is None:
            return None
        return round(max(self._peak - self._base, 0.0), 1)


def _reset_peak() -> float | None:
    """Reset the process's resident high-water mark; the resident size now, or None when it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
