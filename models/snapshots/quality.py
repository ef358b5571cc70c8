"""Quality of probability forecasts against 0/1 outcomes: AUC with a DeLong interval, log loss, calibration.

Shared by the freshness benchmark and the strategy lab. Scores are probabilities; labels are 0/1 floats.

>>> import numpy as np
>>> p, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0])
>>> auc_delong(p, y)[0]
0.75
>>> round(log_loss(p, y), 4), round(ece(p, y), 4)
(0.4723, 0.3375)
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-6
ECE_BINS = 10


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    _, first, counts = np.unique(sorted_x, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def auc_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUC (ties count one half) and its DeLong standard error; (nan, nan) without both classes."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    n1, n0 = len(pos), len(neg)
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan
    r_all = midranks(np.concatenate([pos, neg]))
    r_pos, r_neg = midranks(pos), midranks(neg)
    v10 = (r_all[:n1] - r_pos) / n0  # per positive: share of negatives scored below it
    v01 = 1.0 - (r_all[n1:] - r_neg) / n1  # per negative: share of positives scored above it
    auc = float(v10.mean())
    var = (v10.var(ddof=1) if n1 > 1 else 0.0) / n1 + (v01.var(ddof=1) if n0 > 1 else 0.0) / n0
    return auc, math.sqrt(var)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(p, EPS, 1.0 - EPS)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def calibration(p: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Mean score, ``|mean score − observed rate|`` and log loss of scores ``p`` for labels ``y``."""
    if len(y) == 0 or np.isnan(p).any():
        return {"mean": None, "gap": None, "log_loss": None}
    mean = float(p.mean())
    return {"mean": mean, "gap": abs(mean - float(y.mean())), "log_loss": log_loss(p, y)}


def auc_summary(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    auc, se = auc_delong(scores, labels) if not np.isnan(scores).any() else (math.nan, math.nan)
    if math.isnan(auc):
        return {"auc": None, "lo95": None, "hi95": None}
    return {"auc": auc, "lo95": auc - 1.96 * se, "hi95": auc + 1.96 * se}


def ece(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: over ``bins`` equal-width probability bins, ``Σ |Σy − Σp| / n``."""
    if len(y) == 0:
        return math.nan
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    observed = np.bincount(idx, weights=y, minlength=bins)
    predicted = np.bincount(idx, weights=p, minlength=bins)
    return float(np.abs(observed - predicted).sum() / len(y))
