"""Conservative mode: start from a baseline offer and move away from it only where the posterior says it pays.

A shop that switches the policy on already earns what its current offer earns (the *baseline*,
``baseline_offer``, ``none`` unless said). Thompson sampling at a small shop's traffic spends weeks exploring
offers that lose money before the context pays for it; conservative mode (``conservative``, on by default)
keeps the policy on the baseline unless one of two conditions, both stated with the same confidence
(``baseline_confidence``), allows another offer at this decision:

* **the gate**: the posterior probability that the offer earns more than the baseline *at this context* is at
  least the confidence. It is read from the Monte Carlo draws Thompson sampling makes anyway (the share of the
  joint draws in which the offer's reward beats the baseline's), drawn with the posterior's own spread, not the
  narrower one ``exploration`` samples from;
* **the budget** (Kazerouni et al. 2017, "Conservative contextual linear bandits"): the posterior probability
  that the decisions learned so far plus this one earn at least ``(1 − baseline_budget)`` × what the baseline
  would have earned on the same decisions is at least the confidence. The budget is what the policy may risk to
  learn: it grows with α × the baseline's earnings and with the advantage of what was shown, and exploration
  spends it.

Thompson sampling then chooses among the allowed offers (the baseline always is); the exploration floor is mixed
in after, as without the mode. Which offers are allowed is a function of the posterior, the budget, the context
and the seeded draws, so the probabilities the offer is drawn from, and logged, are still exactly the ones used.

**The budget's statistic.** Under the linear model an offer's expected reward at a context is ``θ·u`` with
``u = v·z`` (its design row ``z`` times its value at stake ``v``; ``z`` alone without one). So the advantage of
every decision's shown offer ``a`` over the baseline ``b``, plus α × the baseline's reward, summed over the
decisions, is ``θ·W`` with ``W = Σ (u_a − u_b + α·u_b)``: one vector, updated with each reward the policy
learns and aged by the posterior's forgetting ``γ`` per reward, so the budget covers the same past as the
posterior. Being a sum, it is shared across a fleet exactly as the posterior's statistics are (a lesson carries
the part since the last lesson, in the lesson's column order). The linear budget leaves out the [0, 1] clip of
the purchase probability the gate applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import stdtr

from bandits.linear_model import NORMAL_DOF, LinearPosterior


class Budget:
    """``W = Σ γ^age (u_shown − u_baseline + α·u_baseline)`` over the rewards learned, and its part since the last
    lesson. Its length follows the posterior's columns, which only ever grow at the end.

    >>> budget = Budget()
    >>> budget.add(np.array([1.0, 2.0]), factor=0.5)
    >>> budget.add(np.array([1.0, 0.0, 3.0]), factor=0.5)
    >>> budget.vector(3).tolist(), budget.take_lesson(3).tolist(), budget.take_lesson(3).tolist()
    ([1.5, 1.0, 3.0], [1.5, 1.0, 3.0], [0.0, 0.0, 0.0])
    """

    def __init__(self) -> None:
        self._total = np.zeros(0)
        self._lesson = np.zeros(0)

    def vector(self, dim: int) -> np.ndarray:
        """``W`` over ``dim`` columns (those the posterior grew since are 0: nothing learned involved them)."""
        self._fit(dim)
        return self._total

    def add(self, row: np.ndarray, factor: float) -> None:
        """Age by ``factor`` (the posterior's forgetting for one reward), then add one decision's ``row``."""
        self._fit(row.size)
        self._total = factor * self._total + row
        self._lesson = factor * self._lesson + row

    def age(self, factor: float) -> None:
        self._total = factor * self._total
        self._lesson = factor * self._lesson

    def take_lesson(self, dim: int) -> np.ndarray:
        """The part since the last lesson, and start anew."""
        self._fit(dim)
        lesson, self._lesson = self._lesson, np.zeros(dim)
        return lesson

    def fold(self, vector: np.ndarray, index: np.ndarray, dim: int) -> None:
        """Add another worker's lesson, whose column ``j`` is this one's ``index[j]`` (already aged)."""
        self._fit(dim)
        self._total[index] += vector

    def snapshot(self) -> list[float]:
        return self._total.tolist()

    def restore(self, state: list[float] | None) -> None:
        self._total = np.zeros(0) if state is None else np.asarray(state, dtype=float)
        self._lesson = np.zeros(self._total.size)

    def _fit(self, dim: int) -> None:
        if self._total.size < dim:
            self._total = np.concatenate([self._total, np.zeros(dim - self._total.size)])
        if self._lesson.size < dim:
            self._lesson = np.concatenate([self._lesson, np.zeros(dim - self._lesson.size)])


def probability_non_negative(posterior: LinearPosterior, functionals: np.ndarray) -> np.ndarray:
    """P(θ·w ≥ 0) under the posterior for each row ``w`` of ``functionals`` (Student-t, normal above
    :data:`NORMAL_DOF` degrees of freedom, as the joint draws are)."""
    means, scale, dof = posterior.predictive_joint(functionals)
    z = means / np.sqrt(np.clip(np.diag(scale), 1e-300, None))
    return stdtr(dof, z) if dof <= NORMAL_DOF else stdtr(np.inf, z)


def budget_rows(rows: np.ndarray, values: np.ndarray | None, baseline: int, alpha: float) -> np.ndarray:
    """Each offer's ``u_o − u_b + α·u_b``: what showing it adds to ``W`` (``u = v·z``, or ``z`` without values)."""
    u = rows if values is None else rows * values[:, None]
    return u - (1.0 - alpha) * u[baseline]


def lesson_budget(lesson: Mapping[str, Any], width: int) -> np.ndarray:
    """The budget part of a lesson (zeros from a worker that kept none)."""
    budget = lesson.get("budget")
    return np.zeros(width) if budget is None else np.asarray(budget, dtype=float)
