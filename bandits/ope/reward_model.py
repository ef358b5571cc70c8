"""The reward model of the doubly robust estimator: per-action ridge regression, cross-fitted.

Why this model: it is closed-form numpy (no extra dependency, deterministic), it uses the context, and it
degrades gracefully where data is thin, which matters on click logs with a few dozen clicks over 80 items:

* each action's intercept is its mean reward shrunk towards the global mean by ``prior_rows`` pseudo-rows
  (an action never seen in training predicts the global mean);
* an action with at least ``min_rows`` training rows also gets ridge slopes (penalty ``ridge``) on the
  standardised context, fitted to its centred rewards; with fewer rows it keeps the shrunk mean alone;
* predictions are clipped to the range of the training rewards (a click model never leaves [0, 1]).

Cross-fitting: rows are split into ``folds`` seeded folds; a row's predictions come from the model fitted on the
other folds, so DR's correction term is not fitted on its own residual.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(400, 1)); a = rng.integers(0, 2, 400); r = np.where(a == 1, 2.0 * x[:, 0], 1.0)
>>> q = cross_fitted_q(x, a, r, n_actions=2, seed=0)
>>> float(np.abs(q[a == 1, 1] - r[a == 1]).mean()) < 0.1, float(np.abs(q[:, 0] - 1.0).max()) < 0.05
(True, True)
"""

from __future__ import annotations

import numpy as np


class PerActionRidge:
    """Shrunk per-action means plus ridge slopes where an action has enough rows; see the module docstring."""

    def __init__(self, n_actions: int, ridge: float = 1.0, min_rows: int = 20, prior_rows: float = 5.0) -> None:
        self.n_actions = n_actions
        self.ridge = ridge
        self.min_rows = min_rows
        self.prior_rows = prior_rows
        self._mu = np.zeros(0)
        self._sd = np.ones(0)
        self._intercepts = np.zeros(n_actions)
        self._centres = np.zeros((n_actions, 0))
        self._slopes = np.zeros((n_actions, 0))
        self._range = (-np.inf, np.inf)

    def fit(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> PerActionRidge:
        d = x.shape[1]
        self._mu = x.mean(axis=0) if len(x) else np.zeros(d)
        sd = x.std(axis=0) if len(x) else np.ones(d)
        self._sd = np.where(sd > 0, sd, 1.0)
        z = (x - self._mu) / self._sd
        overall = float(rewards.mean()) if len(rewards) else 0.0
        self._range = (float(rewards.min()), float(rewards.max())) if len(rewards) else (0.0, 0.0)
        self._intercepts = np.full(self.n_actions, overall)
        self._centres = np.zeros((self.n_actions, d))
        self._slopes = np.zeros((self.n_actions, d))
        for a in range(self.n_actions):
            rows = actions == a
            n_a = int(rows.sum())
            if n_a == 0:
                continue
            r_a = rewards[rows]
            self._intercepts[a] = (float(r_a.sum()) + self.prior_rows * overall) / (n_a + self.prior_rows)
            if n_a < self.min_rows:
                continue
            z_a = z[rows]
            centre = z_a.mean(axis=0)
            zc = z_a - centre
            gram = zc.T @ zc + self.ridge * np.eye(d)
            self._centres[a] = centre
            self._slopes[a] = np.linalg.solve(gram, zc.T @ (r_a - r_a.mean()))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted reward of every action for every row: ``n × n_actions``."""
        z = (x - self._mu) / self._sd
        # q[i, a] = intercept_a + (z_i - centre_a) · slope_a
        q = self._intercepts + z @ self._slopes.T - np.einsum("ad,ad->a", self._centres, self._slopes)
        return np.clip(q, *self._range)


def cross_fitted_q(
    x: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    folds: int = 2,
    seed: int = 0,
    ridge: float = 1.0,
    min_rows: int = 20,
    prior_rows: float = 5.0,
) -> np.ndarray:
    """``q[i, a]``: the reward model's prediction for action ``a`` in round ``i``, from a model not fitted on ``i``.

    ``actions`` are integer indices into ``range(n_actions)``; ``folds=1`` fits and predicts on every row.
    """
    n = len(rewards)
    q = np.zeros((n, n_actions))
    if folds <= 1:
        return PerActionRidge(n_actions, ridge, min_rows, prior_rows).fit(x, actions, rewards).predict(x)
    fold = np.random.default_rng([seed, 0x0DF]).permutation(n) % folds
    for k in range(folds):
        held, train = fold == k, fold != k
        model = PerActionRidge(n_actions, ridge, min_rows, prior_rows).fit(x[train], actions[train], rewards[train])
        q[held] = model.predict(x[held])
    return q
