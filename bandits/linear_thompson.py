"""Linear Thompson sampling: draw every offer's reward from the posterior at this context, show the best.

Sampling the coefficients ``θ ~ posterior`` and scoring each offer's row ``z·θ`` is, for the choice at one
context, the same as drawing the offers' rewards ``Z θ`` from their joint predictive (a multivariate Student-t
with mean ``Z μ`` and scale ``b/a · Z A⁻¹ Zᵀ``), which needs a K × K factorisation (K offers) instead of a
d-dimensional draw. The probability that each offer wins has no closed form, so ``mc_samples`` joint draws
(seeded by the caller) estimate it; mixed with the exploration floor, those are the probabilities the offer is
then drawn from, so the logged propensity is exactly the probability the policy used.

>>> import numpy as np
>>> ts = LinearThompson(context=("x",), lift_context=("x",), lift_by=(), mc_samples=2000, forget_half_life=None,
...                     value_key=None)
>>> rng = np.random.default_rng(0)
>>> for _ in range(300):
...     x = float(rng.uniform(-1, 1))
...     ts.update({"x": x}, "a", 5.0 * x, 1.0); ts.update({"x": x}, "b", -5.0 * x, 1.0)
>>> [ts.choose({"x": v}, ["a", "b"], np.random.default_rng(1)).offer for v in (0.8, -0.8)]
['a', 'b']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bandits.base import Choice, sample_choice, with_floor
from bandits.linear import LinearArms
from bandits.linear_model import draw_joint


class LinearThompson(LinearArms):
    """Contextual Thompson sampling on a Bayesian linear model of who buys under each offer (the default policy).

    ``exploration`` scales the spread of the draws (their scale matrix by ``exploration²``): below 1 the policy
    samples closer to the posterior mean and explores less; the propensities are those of the scaled draws.
    """

    name = "linear_thompson"

    def __init__(self, *args: Any, exploration: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if exploration <= 0:
            raise ValueError(f"exploration {exploration!r} must be positive")
        self.exploration = exploration

    def win_probabilities(
        self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Monte Carlo P(offer has the highest sampled reward), before the floor; and the expected rewards."""
        means, scale, dof = self.predict(context, offers)
        values = self.values(context, offers)
        draws = self.to_reward(draw_joint(means, self.exploration**2 * scale, dof, self.mc_samples, rng), values)
        wins = np.bincount(draws.argmax(axis=1), minlength=len(offers))
        return wins / self.mc_samples, self.to_reward(means, values)

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        wins, means = self.win_probabilities(context, offers, rng)
        scores = {o: round(float(m), 6) for o, m in zip(offers, means, strict=True)}
        return sample_choice(offers, with_floor(wins, self.propensity_floor), rng, scores)
