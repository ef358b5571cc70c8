"""Platt scaling of an online learner's probability, learned online from the predictions it made before learning.

An SGD logistic regression at a constant rate keeps moving: on a weak signal its weights wander, and its
probabilities spread wider than what it knows (on the lab's 20-day ``abrupt`` run the price model's mean daily
log loss was 0.724 against the base rate's 0.673, its expected calibration error 0.13). A learner's prequential
predictions, each made before the example was learned, are held-out forecasts, so they can be calibrated
without setting rows aside: :class:`OnlinePlatt` fits ``p = sigmoid(a · logit(p_raw) + b)`` on them
(:class:`models.calibration.Platt`, the snapshots' fit; the slope keeps the ranking).

Its statistics are sums, so a fleet shares them exactly, as the policy's posterior does: per bin of the raw
margin (``BINS`` bins of width ``BIN_WIDTH`` over ``±MARGIN_CAP``) the weight, the weighted labels and the
weighted margins, each aged by ``γ = 0.5^(1 / half_life)`` per example so the calibration follows a drifting
shop (a lesson carries its part and its count of examples; folding ages this learner's sums by ``γ`` per
example in it, then adds). The fit is a function of the sums alone: refitted when they changed, on each bin's
mean margin and label rate, weighted by its weight; until the sums hold ``min_weight`` examples' worth the
learner's probability passes unchanged.

>>> import random
>>> rng = random.Random(0)
>>> cal = OnlinePlatt(half_life=10_000)
>>> for _ in range(5000):  # a model twice as confident as it should be: the truth is sigmoid(m / 2)
...     m = rng.gauss(0.0, 2.0)
...     cal.learn(1 / (1 + math.exp(-m)), rng.random() < 1 / (1 + math.exp(-m / 2)))
>>> raw = 1 / (1 + math.exp(-2.0))  # the model's probability at m = 2; the truth there is sigmoid(1) = 0.73
>>> round(raw, 2), round(cal.apply(raw), 2)
(0.88, 0.73)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.calibration import Platt

MARGIN_CAP = 8.0
BIN_WIDTH = 0.25
BINS = int(2 * MARGIN_CAP / BIN_WIDTH)
_WEIGHT, _LABELS, _MARGINS = range(3)


class OnlinePlatt:
    """Platt scaling fitted on decayed, binned sums of prequential (margin, label, weight)."""

    def __init__(self, half_life: float = 5000.0, min_weight: float = 200.0) -> None:
        if half_life <= 0 or min_weight < 0:
            raise ValueError(f"need a positive half_life and a non-negative min_weight, got {half_life}, {min_weight}")
        self.half_life = half_life
        self.min_weight = min_weight
        self._gamma = 0.5 ** (1.0 / half_life)
        self._sums = np.zeros((3, BINS))
        self._lesson = np.zeros((3, BINS))
        self._lesson_n = 0
        self._fit: Platt | None = None

    def learn(self, p: float, label: bool, weight: float = 1.0) -> None:
        """One prediction ``p`` the learner made before learning the example, its label, and its weight."""
        m = _margin(p)
        if not (math.isfinite(m) and math.isfinite(weight)) or weight <= 0.0:
            return
        k = min(int((m + MARGIN_CAP) / BIN_WIDTH), BINS - 1)
        for sums in (self._sums, self._lesson):
            sums *= self._gamma
            sums[_WEIGHT, k] += weight
            sums[_LABELS, k] += weight * float(label)
            sums[_MARGINS, k] += weight * m
        self._lesson_n += 1
        self._fit = None

    def apply(self, p: float) -> float:
        """The calibrated probability (``p`` itself until ``min_weight`` examples' worth were learned)."""
        platt = self.platt()
        if platt is None:
            return p
        return float(1.0 / (1.0 + math.exp(-(platt.a * _margin(p) + platt.b))))

    def platt(self) -> Platt | None:
        """The current fit, None while the sums hold less than ``min_weight``."""
        weight = self._sums[_WEIGHT]
        if weight.sum() < max(self.min_weight, 1e-9):
            return None
        if self._fit is None:
            used = weight > 1e-12
            w = weight[used]
            self._fit = Platt.fit(self._sums[_MARGINS, used] / w, self._sums[_LABELS, used] / w, w, normalise=False)
        return self._fit

    # -- sharing (stream.core.lessons) and snapshots -------------------------------------------------
    def take_lesson(self) -> dict[str, Any]:
        """The sums since the last lesson and their count of examples; starts the next lesson."""
        lesson = {"n": self._lesson_n, "sums": self._lesson.tolist()}
        self._lesson = np.zeros((3, BINS))
        self._lesson_n = 0
        return lesson

    def whole(self) -> dict[str, Any]:
        return {"n": 0, "sums": self._sums.tolist()}

    def fold(self, lesson: Mapping[str, Any] | None) -> None:
        """Add another worker's lesson (a learner from before calibration sends none)."""
        if not lesson:
            return
        self._sums = self._gamma ** int(lesson["n"]) * self._sums + np.asarray(lesson["sums"], dtype=float)
        self._fit = None

    def snapshot(self) -> dict[str, Any]:
        return {"half_life": self.half_life, "min_weight": self.min_weight, "sums": self._sums.tolist()}

    def restore(self, state: Mapping[str, Any] | None) -> None:
        """Restore a snapshot; None (one taken before calibration) starts empty."""
        self._sums = np.zeros((3, BINS)) if state is None else np.asarray(state["sums"], dtype=float)
        self._lesson = np.zeros((3, BINS))
        self._lesson_n = 0
        self._fit = None


def _margin(p: float) -> float:
    q = min(max(p, 1e-12), 1.0 - 1e-12)
    return max(-MARGIN_CAP, min(MARGIN_CAP, math.log(q / (1.0 - q))))
