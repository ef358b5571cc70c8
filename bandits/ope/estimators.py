"""Off-policy estimators of a target policy's value on logged rounds, with bootstrap intervals.

Per round *i*: logged action *a_i* with propensity *p_i*, reward *r_i*, the target policy's probabilities
π(·|x_i) over the eligible actions, and the importance weight w_i = π(a_i|x_i) / p_i.

* **IPW** — mean(w_i r_i): unbiased when every p_i is the true logging probability and positive wherever π is.
* **SNIPW** — Σ w_i r_i / Σ w_i: self-normalised, a little biased, much less variance with large weights.
* **DR** — mean(Σ_a π(a|x_i) q̂(x_i, a) + w_i (r_i − q̂(x_i, a_i))): the reward model's value, corrected by
  the importance-weighted residual; unbiased if either the propensities or q̂ are right, and tighter than IPW
  when q̂ explains part of the reward (see :mod:`bandits.ope.reward_model`).
* **Replay** (Li et al. 2011) — walk the log in order; the target policy chooses among the eligible actions
  with ``default_rng([seed, i])``; where it picks the logged action the round counts and the policy learns from
  it. The value is the mean reward of matched rounds: unbiased only when the logging policy was uniformly random.

Intervals are percentile bootstraps: ``resamples`` resamples of the per-round terms with replacement (for SNIPW
of numerator and denominator together, for DR of the DR terms with q̂ kept fixed, for replay of the matched
rewards), seeded by ``(seed, estimator)`` so each estimator's interval does not depend on which others ran.

>>> r = np.array([1.0, 0.0, 1.0, 0.0]); w = np.array([2.0, 2.0, 0.0, 0.0])
>>> ipw(r, w).value, snipw(r, w).value
(0.5, 0.5)
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandits.base import Policy
from bandits.ope.logged_rounds import LoggedRounds

# Index-matrix elements drawn per bootstrap chunk: bounds memory (16 MB of int64) whatever the log size.
CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate, its bootstrap interval and standard error (None without resamples), over ``n`` terms."""

    value: float
    ci: tuple[float, float] | None
    se: float | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "se": self.se, "n": self.n}


def _tag(name: str) -> int:
    return zlib.crc32(name.encode())


def bootstrap(
    num: np.ndarray, den: np.ndarray | None = None, resamples: int = 1000, seed: int = 0, name: str = ""
) -> np.ndarray:
    """Bootstrap replicates of Σ num / Σ den (of the mean of ``num`` without ``den``), resampling rows.

    >>> reps = bootstrap(np.array([0.0, 1.0]), resamples=2000, seed=1)
    >>> sorted(set(reps.tolist())), round(float(reps.mean()), 1)
    ([0.0, 0.5, 1.0], 0.5)
    """
    n = len(num)
    out = np.full(resamples, np.nan)
    if n == 0:
        return out
    rng = np.random.default_rng([seed, _tag(name)])
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        top = num[idx].sum(axis=1)
        bottom = den[idx].sum(axis=1) if den is not None else np.full(b, float(n))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + b] = np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1.0), np.nan)
    return out


def _estimate(
    value: float, num: np.ndarray, den: np.ndarray | None, resamples: int, seed: int, name: str, level: float
) -> Estimate:
    if resamples <= 0 or len(num) == 0:
        return Estimate(value, None, None, len(num))
    reps = bootstrap(num, den, resamples, seed, name)
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return Estimate(value, None, None, len(num))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return Estimate(value, (float(lo), float(hi)), float(reps.std(ddof=1)) if len(reps) > 1 else 0.0, len(num))


def ipw(rewards: np.ndarray, weights: np.ndarray, resamples: int = 0, seed: int = 0, level: float = 0.95) -> Estimate:
    """Inverse propensity weighting: mean(w r)."""
    terms = weights * rewards
    value = float(terms.mean()) if len(terms) else float("nan")
    return _estimate(value, terms, None, resamples, seed, "ipw", level)


def snipw(rewards: np.ndarray, weights: np.ndarray, resamples: int = 0, seed: int = 0, level: float = 0.95) -> Estimate:
    """Self-normalised IPW: Σ w r / Σ w (NaN when every weight is 0)."""
    total = float(weights.sum())
    value = float((weights * rewards).sum()) / total if total > 0 else float("nan")
    return _estimate(value, weights * rewards, weights, resamples, seed, "snipw", level)


def dr_terms(rewards: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_target: np.ndarray) -> np.ndarray:
    """Per-round DR terms: ``q_target`` (Σ_a π(a|x) q̂(x, a)) plus the weighted residual of the logged action.

    >>> dr_terms(np.array([1.0]), np.array([2.0]), np.array([0.25]), np.array([0.5])).tolist()
    [2.0]
    """
    return q_target + weights * (rewards - q_logged)


def dr(
    rewards: np.ndarray,
    weights: np.ndarray,
    q_logged: np.ndarray,
    q_target: np.ndarray,
    resamples: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Doubly robust: the mean of :func:`dr_terms`; the bootstrap resamples the terms (q̂ is not refitted)."""
    terms = dr_terms(rewards, weights, q_logged, q_target)
    value = float(terms.mean()) if len(terms) else float("nan")
    return _estimate(value, terms, None, resamples, seed, "dr", level)


def replay_matches(rounds: LoggedRounds, policy: Policy, seed: int = 0) -> np.ndarray:
    """Indices of the rounds where ``policy``, learning from matched rounds only, picks the logged action."""
    matched: list[int] = []
    for i, (context, offers, action) in enumerate(zip(rounds.contexts, rounds.eligible, rounds.actions, strict=True)):
        choice = policy.choose(context, offers, np.random.default_rng([seed, i]))
        if choice.offer == action:
            matched.append(i)
            policy.update(context, action, float(rounds.rewards[i]), float(rounds.propensities[i]))
    return np.array(matched, dtype=np.int64)


def replay(
    rounds: LoggedRounds, policy: Policy, seed: int = 0, resamples: int = 0, level: float = 0.95
) -> tuple[Estimate, np.ndarray]:
    """Li et al.'s replay estimate (mean reward of matched rounds) and the indices of the matched rounds."""
    matched = replay_matches(rounds, policy, seed)
    rewards = rounds.rewards[matched]
    value = float(rewards.mean()) if len(rewards) else float("nan")
    return _estimate(value, rewards, None, resamples, seed, "replay", level), matched


def constant_propensities(propensities: Sequence[float] | np.ndarray, rtol: float = 1e-9) -> bool:
    """Whether every logged propensity is the same (a uniformly random logger, for replay's purposes).

    >>> constant_propensities([0.25, 0.25]), constant_propensities([0.25, 0.5])
    (True, False)
    """
    p = np.asarray(propensities, dtype=float)
    return not len(p) or bool(np.ptp(p) <= rtol * float(np.abs(p).max()))
