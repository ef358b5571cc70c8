"""The XGBoost part of the nightly retrain: collect rows, train (from scratch or warm), evaluate, gate.

The caller streams the recency-sampled archive into a :class:`TrainingSet`, holds out the most recent days with
:meth:`TrainingSet.split_recent`, trains a challenger with :func:`train` (a full retrain) or fine-tunes the
current snapshot's booster on the new rows (:func:`models.snapshots.fine_tune.fine_tune`), scores challenger and
champion on the same held-out slice with :func:`evaluate`, and lets :func:`gate` decide whether the challenger
replaces the current snapshot.

>>> from datetime import date
>>> rng = np.random.default_rng(0)
>>> ts = TrainingSet(["a", "b"])
>>> for i in range(400):
...     x = rng.normal(size=2)
...     ts.append(x, float(x[0] + 0.3 * rng.normal() > 0), 1.0, date(2026, 1, 1 + i % 5))
>>> train_rows, holdout = ts.split_recent(holdout_days=1)
>>> train_rows.n, holdout.n, holdout.days
(320, 80, (datetime.date(2026, 1, 5), datetime.date(2026, 1, 5)))
>>> result = train(train_rows.X, train_rows.y, train_rows.w, ts.feature_names, TrainParams(num_rounds=20, nthread=1))
>>> result.rounds, result.validation_rows
(20, 0)
>>> challenger = evaluate(result.booster, holdout.X, holdout.y, holdout.w)
>>> challenger["auc"] > 0.9, challenger["n"]
(True, 80)
>>> gate(challenger, None)["reason"]
'no current snapshot'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from models.calibration import Platt

# Metric name -> +1 when higher is better, -1 when lower is better.
METRIC_DIRECTIONS: dict[str, int] = {"auc": 1, "logloss": -1, "ece": -1}
ECE_BINS = 10
# Slack on the tolerance comparison, so that e.g. 0.795 vs 0.800 - 0.005 is "on the edge", not below it.
_EDGE_EPS = 1e-12

FloatArray = npt.NDArray[np.float32]


class Rows(NamedTuple):
    """Training rows as arrays: features ``X`` (n, f), label ``y``, weight ``w``, ``day`` as date ordinals."""

    X: FloatArray
    y: FloatArray
    w: FloatArray
    day: npt.NDArray[np.int32]

    @property
    def n(self) -> int:
        """Number of rows (``len()`` of a tuple is its field count, hence a property)."""
        return int(self.y.shape[0])

    @property
    def positives(self) -> int:
        """Rows labelled 1."""
        return int(np.count_nonzero(self.y >= 0.5))

    @property
    def days(self) -> tuple[date, date] | None:
        """Earliest and latest day present, or None when there are no rows."""
        if self.n == 0:
            return None
        return date.fromordinal(int(self.day.min())), date.fromordinal(int(self.day.max()))


class TrainingSet:
    """Rows appended one at a time into float32 chunks.

    Chunks double the capacity (starting at ``chunk_rows``) until they reach ``max_chunk_rows``, then grow in
    blocks of ``max_chunk_rows``, so memory stays within about twice the rows appended (plus one block).

    >>> ts = TrainingSet(["a", "b"], chunk_rows=2)
    >>> ts.append([1.0, float("nan")], 1.0, 2.0, date(2026, 3, 1))
    >>> ts.append(np.array([0.5, 0.25]), 0.0, 1.0, date(2026, 3, 2))
    >>> len(ts), ts.positives, ts.days
    (2, 1, (datetime.date(2026, 3, 1), datetime.date(2026, 3, 2)))
    >>> ts.arrays().X.tolist()
    [[1.0, nan], [0.5, 0.25]]
    """

    def __init__(self, feature_names: Sequence[str], *, chunk_rows: int = 1024, max_chunk_rows: int = 65536) -> None:
        names = tuple(feature_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"feature names must be non-empty and unique, got {names!r}")
        if not 1 <= chunk_rows <= max_chunk_rows:
            raise ValueError(f"need 1 <= chunk_rows <= max_chunk_rows, got {chunk_rows}, {max_chunk_rows}")
        self.feature_names = names
        self.chunk_rows = chunk_rows
        self.max_chunk_rows = max_chunk_rows
        self._X: list[FloatArray] = []
        self._y: list[FloatArray] = []
        self._w: list[FloatArray] = []
        self._day: list[npt.NDArray[np.int32]] = []
        self._n = 0
        self._fill = 0  # rows used in the last chunk
        self._capacity = 0
        self._positives = 0
        self._min_day: int | None = None
        self._max_day: int | None = None

    def append(self, x: npt.ArrayLike, y: float, weight: float, day: date) -> None:
        """Add one row; NaN features are missing values. Raises ValueError on a row training cannot use."""
        row = np.asarray(x, dtype=np.float32)
        if row.shape != (len(self.feature_names),):
            raise ValueError(f"expected {len(self.feature_names)} features, got shape {row.shape}")
        if np.isinf(row).any():
            raise ValueError("features must be finite or NaN (missing)")
        if not 0.0 <= y <= 1.0:
            raise ValueError(f"label must be in [0, 1], got {y!r}")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight must be finite and positive, got {weight!r}")
        if not isinstance(day, date):
            raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
        if self._fill == (self._y[-1].shape[0] if self._y else 0):
            self._grow()
        i, ordinal = self._fill, day.toordinal()
        self._X[-1][i] = row
        self._y[-1][i] = y
        self._w[-1][i] = weight
        self._day[-1][i] = ordinal
        self._fill += 1
        self._n += 1
        self._positives += y >= 0.5
        self._min_day = ordinal if self._min_day is None else min(self._min_day, ordinal)
        self._max_day = ordinal if self._max_day is None else max(self._max_day, ordinal)

    def _grow(self) -> None:
        size = min(max(self.chunk_rows, self._capacity), self.max_chunk_rows)
        self._X.append(np.empty((size, len(self.feature_names)), dtype=np.float32))
        self._y.append(np.empty(size, dtype=np.float32))
        self._w.append(np.empty(size, dtype=np.float32))
        self._day.append(np.empty(size, dtype=np.int32))
        self._capacity += size
        self._fill = 0

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        """Rows allocated so far (appended rows plus the unused tail of the last chunk)."""
        return self._capacity

    @property
    def positives(self) -> int:
        """Rows labelled 1 (label >= 0.5)."""
        return self._positives

    @property
    def days(self) -> tuple[date, date] | None:
        """Earliest and latest day appended, or None when empty."""
        if self._min_day is None or self._max_day is None:
            return None
        return date.fromordinal(self._min_day), date.fromordinal(self._max_day)

    def arrays(self) -> Rows:
        """All rows as fresh contiguous arrays (X float32 (n, f), y float32, w float32, day ordinal int32)."""

        def joined(chunks: list[Any], dtype: type, shape: tuple[int, ...]) -> Any:
            if not chunks:
                return np.empty(shape, dtype=dtype)
            return np.concatenate([*chunks[:-1], chunks[-1][: self._fill]])

        return Rows(
            joined(self._X, np.float32, (0, len(self.feature_names))),
            joined(self._y, np.float32, (0,)),
            joined(self._w, np.float32, (0,)),
            joined(self._day, np.int32, (0,)),
        )

    def split_recent(self, holdout_days: int) -> tuple[Rows, Rows]:
        """``(train, holdout)``: holdout is every row of the last ``holdout_days`` calendar days up to the latest
        day present (``holdout_days=1``: the latest day only), train is everything older."""
        if holdout_days < 1:
            raise ValueError(f"holdout_days must be >= 1, got {holdout_days}")
        rows = self.arrays()
        if self._max_day is None:
            return rows, rows
        recent = rows.day > self._max_day - holdout_days
        older = ~recent
        return (
            Rows(rows.X[older], rows.y[older], rows.w[older], rows.day[older]),
            Rows(rows.X[recent], rows.y[recent], rows.w[recent], rows.day[recent]),
        )


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of a snapshot training; :meth:`to_xgb` gives xgboost's params dict.

    ``num_rounds`` trees for a scratch training. A fine-tune of an existing booster
    (:func:`models.snapshots.fine_tune.fine_tune`) adds one tree per ``warm_rows_per_round`` new rows, at most
    ``warm_rounds``, and learns nothing from fewer than ``warm_min_rows`` new rows (they wait for a later one).
    No booster holds more than ``max_trees`` trees: at the cap a fine-tune refreshes the leaves instead.
    Early stopping on ``eval_metric`` uses a validation split of ``validation_fraction`` of the training rows
    (drawn with ``seed``), only when that split has at least ``min_validation_rows`` rows and both classes.
    ``nthread=0`` means all cores; results are reproducible for a fixed ``seed`` and ``nthread``.
    ``calibration_folds`` >= 2: a scratch training is Platt-scaled on out-of-fold margins of its own rows
    (:func:`cross_fit`, that many extra boosters of the same size; 0: not calibrated).

    >>> TrainParams(seed=3, nthread=2).to_xgb()["seed"], TrainParams().to_xgb().get("nthread")
    (3, None)
    """

    objective: str = "binary:logistic"
    max_depth: int = 6
    eta: float = 0.1
    num_rounds: int = 200
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    tree_method: str = "hist"
    nthread: int = 0
    seed: int = 0
    early_stopping_rounds: int | None = 20
    warm_rounds: int = 10
    warm_rows_per_round: int = 50
    warm_min_rows: int = 200
    max_trees: int = 600
    eval_metric: str = "logloss"
    validation_fraction: float = 0.1
    min_validation_rows: int = 1000
    calibration_folds: int = 0

    def __post_init__(self) -> None:
        if min(self.num_rounds, self.warm_rounds, self.warm_rows_per_round, self.warm_min_rows) < 1:
            raise ValueError("num_rounds, warm_rounds, warm_rows_per_round and warm_min_rows must be >= 1")
        if self.num_rounds > self.max_trees:
            raise ValueError(f"num_rounds ({self.num_rounds}) must not exceed max_trees ({self.max_trees})")
        if self.nthread < 0:
            raise ValueError(f"nthread must be >= 0 (0: all cores), got {self.nthread}")
        if self.calibration_folds < 0 or self.calibration_folds == 1:
            raise ValueError(f"calibration_folds must be 0 (off) or >= 2, got {self.calibration_folds}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")

    def to_xgb(self) -> dict[str, Any]:
        """The params dict for ``xgboost.train`` (round counts and early stopping are arguments, not params)."""
        params: dict[str, Any] = {
            "objective": self.objective,
            "max_depth": self.max_depth,
            "eta": self.eta,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "tree_method": self.tree_method,
            "seed": self.seed,
            "eval_metric": self.eval_metric,
            "verbosity": 0,
        }
        if self.nthread > 0:
            params["nthread"] = self.nthread
        return params


@dataclass(frozen=True)
class TrainResult:
    """A trained booster and what it cost.

    ``cpu_s`` is the process CPU time (``time.process_time``, which sums all of xgboost's threads), ``wall_s``
    the elapsed time; both include building the DMatrix. ``rounds`` counts all trees (a warm start's base
    included); ``best_iteration`` is the last tree kept (``rounds - 1``: early stopping keeps only up to the best).
    ``action`` says what the training did: ``scratch``, ``add`` (trees added to a base), ``refresh`` (the base's
    leaves re-estimated, no tree added) or ``wait`` (nothing learned: ``booster`` is the base and ``rows`` 0);
    ``note`` says why, in words. ``calibration``: the Platt scaling of a scratch training with
    ``calibration_folds`` (None: the booster's probabilities as they are).
    """

    booster: xgb.Booster
    cpu_s: float
    wall_s: float
    rows: int
    rounds: int
    best_iteration: int
    validation_rows: int
    warm: bool
    action: str = "scratch"
    note: str | None = None
    calibration: Platt | None = None

    @property
    def rows_per_s(self) -> float:
        """Training throughput over wall time."""
        return self.rows / self.wall_s if self.wall_s > 0 else math.inf


def train(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    w: npt.ArrayLike,
    feature_names: Sequence[str],
    params: TrainParams | None = None,
    base: xgb.Booster | None = None,
    rounds: int | None = None,
) -> TrainResult:
    """Train from scratch (``base=None``, ``num_rounds`` trees) or continue ``base`` with ``rounds`` more trees
    (default ``warm_rounds``; :func:`models.snapshots.fine_tune.fine_tune` decides how many a night's rows earn).

    The result never holds more than ``params.max_trees`` trees (ValueError when asked for more). ``base`` itself
    is not modified. NaN features are missing values.
    """
    params = params or TrainParams()
    X, y, w = _as_float32(X, y, w, len(feature_names))
    if y.shape[0] == 0:
        raise ValueError("no rows to train on")
    names = list(feature_names)
    check_base(base, names)
    adding = rounds if rounds is not None else params.warm_rounds if base is not None else params.num_rounds
    have = base.num_boosted_rounds() if base is not None else 0
    if adding < 1 or have + adding > params.max_trees:
        raise ValueError(f"{have} trees + {adding} more: need 1 to max_trees ({params.max_trees}) in all")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fit, val = _validation_split(y, params)
    dmatrix_threads = params.nthread or None

    def dmatrix(mask: npt.NDArray[np.bool_] | None) -> xgb.DMatrix:
        rows = slice(None) if mask is None else mask
        return xgb.DMatrix(
            X[rows], label=y[rows], weight=w[rows], feature_names=names, missing=np.nan, nthread=dmatrix_threads
        )

    evals: list[tuple[xgb.DMatrix, str]] = []
    callbacks: list[xgb.callback.TrainingCallback] = []
    if val is not None:
        evals.append((dmatrix(val), "validation"))
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=params.early_stopping_rounds or 1,
                metric_name=params.eval_metric,
                data_name="validation",
                save_best=True,
            )
        )
    booster = xgb.train(
        params.to_xgb(),
        dmatrix(fit),
        num_boost_round=adding,
        evals=evals,
        callbacks=callbacks,
        xgb_model=base,
        verbose_eval=False,
    )
    trees = booster.num_boosted_rounds()
    calibration = None if base is not None else cross_fit(X, y, w, names, params, trees)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return TrainResult(
        booster=booster,
        cpu_s=cpu_s,
        wall_s=wall_s,
        rows=int(y.shape[0]),
        rounds=trees,
        best_iteration=trees - 1,
        validation_rows=0 if val is None else int(np.count_nonzero(val)),
        warm=base is not None,
        action="add" if base is not None else "scratch",
        note=f"added {trees - have} trees" if base is not None else None,
        calibration=calibration,
    )


def cross_fit(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    w: npt.NDArray[np.float32],
    feature_names: Sequence[str],
    params: TrainParams,
    trees: int,
) -> Platt | None:
    """Platt scaling for a booster of ``trees`` trees trained on these rows, fitted on out-of-fold margins:
    ``params.calibration_folds`` boosters of ``trees`` trees (no early stopping), each without one fold (drawn
    with ``params.seed``). None when a fold's training rows hold a single class."""
    folds = params.calibration_folds
    n = int(y.shape[0])
    if folds < 2 or n < folds:
        return None
    fold = np.random.default_rng(params.seed).permutation(n) % folds
    fold_params = replace(params, num_rounds=trees, early_stopping_rounds=None, calibration_folds=0)
    margin = np.empty(n, dtype=np.float64)
    for k in range(folds):
        fit = fold != k
        if np.unique(y[fit]).size < 2:
            return None
        booster = train(X[fit], y[fit], w[fit], feature_names, fold_params).booster
        out = xgb.DMatrix(X[~fit], feature_names=list(feature_names), missing=np.nan)
        margin[~fit] = booster.predict(out, output_margin=True)
    return Platt.fit(margin, y, w)


def check_base(base: xgb.Booster | None, feature_names: Sequence[str]) -> None:
    """ValueError when ``base`` was trained on other features than ``feature_names`` (in that order)."""
    if base is not None and base.feature_names is not None and list(base.feature_names) != list(feature_names):
        raise ValueError(f"base booster features {base.feature_names} differ from {list(feature_names)}")


def _validation_split(
    y: FloatArray, params: TrainParams
) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
    """(fit mask, validation mask), or (None, None) when early stopping is off or the split would be too small."""
    n = y.shape[0]
    n_val = int(n * params.validation_fraction)
    if not params.early_stopping_rounds or n_val < max(1, params.min_validation_rows):
        return None, None
    val = np.zeros(n, dtype=bool)
    val[np.random.default_rng(params.seed).permutation(n)[:n_val]] = True
    positives = np.count_nonzero(y[val] >= 0.5)
    if positives in (0, n_val):
        return None, None
    return ~val, val


def evaluate(
    booster: xgb.Booster,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    w: npt.ArrayLike,
    calibration: Platt | None = None,
) -> dict[str, Any]:
    """Weighted ``auc`` and ``logloss`` (xgboost's own metrics), ``ece``, ``n``, ``positives``, ``weight``, ``note``.

    With ``calibration`` the probabilities are the booster's margin through it (its ``logloss`` computed here;
    ``auc`` is unchanged, the scaling keeps the ranking).

    ``ece`` is the expected calibration error over 10 equal-width probability bins, weighted: the sum over bins
    of ``|sum w*y - sum w*p|`` divided by the total weight. A slice with one class has ``auc`` None; an empty
    slice has every metric None; ``note`` says why (None otherwise). ``booster`` is not modified.
    """
    n_features = booster.num_features()
    X, y, w = _as_float32(X, y, w, n_features)
    n = int(y.shape[0])
    positives = int(np.count_nonzero(y >= 0.5))
    out: dict[str, Any] = {"n": n, "positives": positives, "weight": float(w.sum(dtype=np.float64))}
    if n == 0:
        return out | {"auc": None, "logloss": None, "ece": None, "note": "empty slice"}
    data = xgb.DMatrix(X, label=y, weight=w, feature_names=booster.feature_names, missing=np.nan)
    scorer = booster.copy()  # setting eval metrics on the caller's booster would change its saved config
    scorer.set_param([("eval_metric", "auc"), ("eval_metric", "logloss")])
    metrics = _parse_eval(scorer.eval(data, name="slice"))
    single_class = positives in (0, n)
    if calibration is None:
        p = booster.predict(data).astype(np.float64)
        logloss = metrics["logloss"]
    else:
        p = calibration.apply(booster.predict(data, output_margin=True)).astype(np.float64)
        logloss = _log_loss(p, y.astype(np.float64), w.astype(np.float64))
    return out | {
        "auc": None if single_class else metrics["auc"],
        "logloss": logloss,
        "ece": _ece(p, y.astype(np.float64), w.astype(np.float64)),
        "note": f"single class in slice ({positives} positives of {n})" if single_class else None,
    }


def _parse_eval(text: str) -> dict[str, float]:
    """``'[0]\\tslice-logloss:0.61\\tslice-auc:0.74'`` -> ``{'logloss': 0.61, 'auc': 0.74}``."""
    metrics = {}
    for field in text.split("\t")[1:]:
        name, _, value = field.rpartition(":")
        metrics[name.removeprefix("slice-")] = float(value)
    return metrics


def _log_loss(p: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> float:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-(w * (y * np.log(q) + (1 - y) * np.log(1 - q))).sum() / w.sum())


def _ece(p: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> float:
    bins = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    observed = np.bincount(bins, weights=w * y, minlength=ECE_BINS)
    predicted = np.bincount(bins, weights=w * p, minlength=ECE_BINS)
    return float(np.abs(observed - predicted).sum() / w.sum())


def _as_float32(
    X: npt.ArrayLike, y: npt.ArrayLike, w: npt.ArrayLike, n_features: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    Xa = np.asarray(X, dtype=np.float32)
    ya = np.asarray(y, dtype=np.float32).reshape(-1)
    wa = np.asarray(w, dtype=np.float32).reshape(-1)
    if Xa.ndim == 1 and Xa.size == 0:
        Xa = Xa.reshape(0, n_features)
    if Xa.ndim != 2 or Xa.shape[1] != n_features:
        raise ValueError(f"X must have shape (n, {n_features}), got {Xa.shape}")
    if not Xa.shape[0] == ya.shape[0] == wa.shape[0]:
        raise ValueError(f"X, y and w differ in length: {Xa.shape[0]}, {ya.shape[0]}, {wa.shape[0]}")
    return Xa, ya, wa


def gate(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    metric: str = "auc",
    tolerance: float = 0.005,
) -> dict[str, Any]:
    """Promote the challenger when its ``metric`` on the held-out slice is no worse than the champion's minus
    ``tolerance`` (auc: higher is better; logloss and ece: lower is better).

    >>> gate({"auc": 0.795}, {"auc": 0.800})["promote"], gate({"auc": 0.794}, {"auc": 0.800})["promote"]
    (True, False)
    >>> gate({"logloss": 0.41}, {"logloss": 0.40}, metric="logloss")["reason"]
    'logloss 0.410000 > 0.405000 (champion 0.400000 + tolerance 0.005)'
    >>> gate({"auc": None, "note": "empty slice"}, {"auc": 0.8})["reason"]
    'challenger has no auc: empty slice'
    """
    if metric not in METRIC_DIRECTIONS:
        raise ValueError(f"unknown metric {metric!r}; one of {sorted(METRIC_DIRECTIONS)}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    chal = _metric_value(challenger, metric)
    champ = None if champion is None else _metric_value(champion, metric)
    verdict: dict[str, Any] = {"metric": metric, "tolerance": tolerance, "challenger": chal, "champion": champ}
    if chal is None:
        note = challenger.get("note")
        return verdict | {"promote": False, "reason": f"challenger has no {metric}" + (f": {note}" if note else "")}
    if champion is None:
        return verdict | {"promote": True, "reason": "no current snapshot"}
    if champ is None:
        return verdict | {"promote": True, "reason": f"current snapshot has no {metric}"}
    higher_better = METRIC_DIRECTIONS[metric] > 0
    bar = champ - tolerance if higher_better else champ + tolerance
    ok = chal >= bar - _EDGE_EPS if higher_better else chal <= bar + _EDGE_EPS
    relation = (">=" if ok else "<") if higher_better else ("<=" if ok else ">")
    sign = "-" if higher_better else "+"
    reason = f"{metric} {chal:.6f} {relation} {bar:.6f} (champion {champ:.6f} {sign} tolerance {tolerance:g})"
    return verdict | {"promote": ok, "reason": reason}


def _metric_value(report: Mapping[str, Any], metric: str) -> float | None:
    value = report.get(metric)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)
