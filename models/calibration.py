"""Platt scaling, ``p = sigmoid(a * margin + b)``: of a snapshot's booster, fitted on rows the trees did not learn,
and of the online learners (:mod:`models.learners.calibration`, on their prequential predictions).

A booster trained on a few hundred rows of a weak signal (the first nights of a shop) predicts probabilities
far too extreme: on the lab's 20-day runs its log loss was worse than the base rate's on those nights. A
two-parameter logistic fit on its margin (log-odds) shrinks them (``a < 1``) and re-centres them (``b``) without
changing the ranking (``a`` is kept in ``[A_MIN, A_MAX]``, so AUC is unchanged).

:func:`models.snapshots.training.cross_fit` fits it on out-of-fold margins of the training rows themselves
(``folds`` boosters of the same size, each trained without one fold), so no row is set aside and the gate's
held-out days stay untouched.
(Fitting on the early-stopping validation rows alone was measured too: 30-300 rows, too few to move the error.)
:func:`models.snapshots.training.train` runs it when ``TrainParams.calibration_folds`` > 0; the nightly retrain
stores the result in the snapshot's metadata (``models.<name>.calibration``) and the registry applies it when
scoring; the lab's snapshot strategies apply the same :class:`Platt`. A snapshot without it scores as its
booster alone.

The fit is Newton's method on the weighted log loss (weights normalised to a mean of 1), with a ridge pulling
``(a, b)`` towards the identity ``(1, 0)`` of strength ``prior`` rows.

>>> rng = np.random.default_rng(0)
>>> m = rng.normal(scale=2.0, size=20000)
>>> y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * m - 1.0)))).astype(float)
>>> cal = Platt.fit(m, y)
>>> round(cal.a, 1), round(cal.b, 1)
(0.5, -1.0)
>>> Platt.from_metadata(cal.to_metadata()) == cal, Platt.from_metadata(None) is None
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

PRIOR_ROWS = 2.0  # ridge towards the identity, in rows' worth of log loss
# the slope's range: above 0 keeps the ranking; out-of-fold boosters of a few near-constant trees can ask for
# a slope of 100 (measured on the lab's first nights), which would blow up the full booster's margins
A_MIN, A_MAX = 0.01, 2.0
_ITERATIONS = 50


@dataclass(frozen=True)
class Platt:
    """``sigmoid(a * margin + b)``; the identity is ``Platt(1.0, 0.0)``."""

    a: float
    b: float

    @classmethod
    def fit(
        cls,
        margin: npt.ArrayLike,
        y: npt.ArrayLike,
        w: npt.ArrayLike | None = None,
        prior: float = PRIOR_ROWS,
        normalise: bool = True,
    ) -> Platt:
        """Fit on margins ``margin`` with labels ``y`` (0/1, or a rate in [0, 1] for a group of rows) and weights
        ``w`` (default 1), normalised to a mean of 1 unless ``normalise`` is False (each row's weight then counts
        the rows it stands for, as the prior's ``prior`` rows do)."""
        m = np.asarray(margin, dtype=np.float64).reshape(-1)
        t = np.asarray(y, dtype=np.float64).reshape(-1)
        wt = np.ones_like(m) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
        if not m.shape == t.shape == wt.shape or m.size == 0:
            raise ValueError(f"need equal, non-empty margin, y and w, got {m.shape}, {t.shape}, {wt.shape}")
        if normalise:
            wt = wt / wt.mean()
        identity = np.array([1.0, 0.0])
        design = np.stack([m, np.ones_like(m)], axis=1)

        def loss(theta: npt.NDArray[np.float64]) -> float:
            z = design @ theta
            shift = theta - identity
            return float(wt @ (np.logaddexp(0.0, z) - t * z)) + 0.5 * prior * float(shift @ shift)

        theta = identity.copy()
        for _ in range(_ITERATIONS):
            p = _sigmoid(design @ theta)
            grad = design.T @ (wt * (p - t)) + prior * (theta - identity)
            hess = (design * (wt * p * (1 - p))[:, None]).T @ design + prior * np.eye(2)
            step = np.linalg.solve(hess, grad)
            before, scale = loss(theta), 1.0
            while scale > 1e-6 and not loss(theta - scale * step) <= before:  # damped: never a worse fit
                scale /= 2
            theta = theta - scale * step
            if np.abs(scale * step).max() < 1e-10:
                break
        if not np.isfinite(theta).all():
            return cls(1.0, 0.0)
        if not A_MIN <= theta[0] <= A_MAX:  # the slope at its bound, the intercept refitted for it
            a = float(np.clip(theta[0], A_MIN, A_MAX))
            b = float(theta[1])
            for _ in range(_ITERATIONS):
                p = _sigmoid(a * m + b)
                db = (float(wt @ (p - t)) + prior * b) / (float(wt @ (p * (1 - p))) + prior)
                b -= db
                if abs(db) < 1e-10:
                    break
            return cls(a, b)
        return cls(float(theta[0]), float(theta[1]))

    def apply(self, margin: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Calibrated probabilities (float32, elementwise: a row's value never depends on its batch)."""
        z = self.a * np.asarray(margin, dtype=np.float64) + self.b
        return _sigmoid(z).astype(np.float32)

    def to_metadata(self) -> dict[str, Any]:
        """What a snapshot's metadata stores (``models.<name>.calibration``)."""
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any] | None) -> Platt | None:
        """The calibration a metadata entry describes; None for none (an older snapshot). ValueError when bad."""
        if entry is None:
            return None
        if not isinstance(entry, Mapping) or entry.get("method") != "platt":
            raise ValueError(f"unknown calibration {entry!r}")
        a, b = entry.get("a"), entry.get("b")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (a, b)):
            raise ValueError(f"calibration needs finite a and b, got {entry!r}")
        return cls(float(a), float(b))  # type: ignore[arg-type]


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))
