"""LinUCB (Li et al. 2010): show the offer with the highest upper confidence bound.

The bound is each offer's posterior mean plus ``ucb_alpha`` times its predictive scale (the scale already
carries the estimated noise, so ``ucb_alpha`` is in standard deviations), turned into a reward as
:meth:`LinearArms.to_reward` does (optimistic means a higher purchase probability where the value at stake is
positive, a lower one where it is negative). The choice is
deterministic given the posterior; the exploration floor is the only randomness, and the logged propensity is
the floor-mixed probability: ``1 − (K − 1)·floor`` for the top offer and ``floor`` for each other eligible one.

>>> import numpy as np
>>> ucb = LinUCB(context=("x",), lift_context=(), ucb_alpha=1.0, propensity_floor=0.05, value_key=None)
>>> for _ in range(100):
...     ucb.update({"x": 1.0}, "a", 2.0, 1.0); ucb.update({"x": 1.0}, "b", 1.0, 1.0)
>>> c = ucb.choose({"x": 1.0}, ["a", "b"], np.random.default_rng(0))
>>> c.offer, round(c.propensity, 6)
('a', 0.95)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bandits.base import Choice, sample_choice, with_floor
from bandits.linear import LinearArms


class LinUCB(LinearArms):
    """Upper-confidence-bound choice on the same linear posterior as :class:`LinearThompson`."""

    name = "linucb"

    def __init__(self, *args: Any, ucb_alpha: float = 1.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ucb_alpha = ucb_alpha

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        means, scale, _ = self.predict(context, offers)
        values = self.values(context, offers)
        spread = self.ucb_alpha * np.sqrt(np.clip(np.diag(scale), 0.0, None))
        optimistic = means + spread if values is None else np.where(values >= 0, means + spread, means - spread)
        bounds = self.to_reward(optimistic, values)
        top = np.zeros(len(offers))
        top[int(bounds.argmax())] = 1.0
        scores = {o: round(float(u), 6) for o, u in zip(offers, bounds, strict=True)}
        return sample_choice(offers, with_floor(top, self.propensity_floor), rng, scores)
