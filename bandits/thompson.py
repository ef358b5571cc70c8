"""Thompson sampling over offers with a conjugate Normal-Inverse-Gamma posterior on each offer's reward.

Rewards are profit per decision (margin × revenue − offer cost, or 0), so they are real-valued with an unknown
variance: the Normal-Inverse-Gamma prior is the conjugate choice, and each offer's mean reward has a Student-t
posterior. Thompson sampling draws one mean per offer and shows the best; the probability of each offer being
shown has no closed form, so it is estimated by Monte Carlo (``mc_samples`` joint draws, seeded by the caller),
mixed with an exploration floor, and the offer is then drawn from exactly those probabilities — so the logged
propensity is the probability the policy really used.

>>> import numpy as np
>>> ts = ConjugateThompson(mc_samples=2000, propensity_floor=0.01)
>>> for _ in range(200):
...     ts.update({}, "a", 1.0, 1.0); ts.update({}, "b", 0.0, 1.0)
>>> c = ts.choose({}, ["a", "b"], np.random.default_rng(0))
>>> c.offer, c.propensity
('a', 0.99)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bandits.base import Choice, sample_choice, with_floor
from stream.core.lessons import Lesson, LessonMismatch


@dataclass(slots=True)
class NormalInverseGamma:
    """Posterior of a Gaussian reward with unknown mean and variance: mean m, strength κ, shape α, scale β."""

    mean: float
    strength: float
    shape: float
    scale: float
    n: int = 0

    def update(self, x: float) -> None:
        strength = self.strength + 1.0
        self.scale += self.strength * (x - self.mean) ** 2 / (2.0 * strength)
        self.mean = (self.strength * self.mean + x) / strength
        self.strength = strength
        self.shape += 0.5
        self.n += 1

    def fold(self, n: float, total: float, squares: float) -> None:
        """Learn ``n`` observations at once from their sum and sum of squares: the same posterior as ``n`` calls
        of :meth:`update` (the conjugate batch update)."""
        if n <= 0:
            return
        mean = total / n
        spread = max(squares - n * mean * mean, 0.0)  # Σ (x − x̄)²
        strength = self.strength + n
        self.scale += 0.5 * spread + self.strength * n * (mean - self.mean) ** 2 / (2.0 * strength)
        self.mean = (self.strength * self.mean + total) / strength
        self.strength = strength
        self.shape += 0.5 * n
        self.n += int(n)

    def mean_spread(self) -> float:
        """Scale of the Student-t posterior of the mean (its degrees of freedom are 2α)."""
        return float(np.sqrt(self.scale / (self.shape * self.strength)))


class ConjugateThompson:
    """Non-contextual Thompson sampling with a Normal-Inverse-Gamma posterior per offer.

    Hyperparameters are public and named like the constructor's arguments; the posteriors are private.
    """

    name = "thompson"

    def __init__(
        self,
        mc_samples: int = 1000,
        propensity_floor: float = 0.01,
        prior_mean: float = 0.0,
        prior_strength: float = 1.0,
        prior_shape: float = 1.0,
        prior_scale: float = 25.0,
    ) -> None:
        self.mc_samples = mc_samples
        self.propensity_floor = propensity_floor
        self.prior_mean = prior_mean
        self.prior_strength = prior_strength
        self.prior_shape = prior_shape
        self.prior_scale = prior_scale
        self._posteriors: dict[str, NormalInverseGamma] = {}
        self._updates = 0
        self._since: dict[str, list[float]] = {}  # per offer, since the last lesson: count, Σ reward, Σ reward²

    @property
    def version(self) -> str:
        return f"{self.name}@{self._updates}"

    def _posterior(self, offer: str) -> NormalInverseGamma:
        post = self._posteriors.get(offer)
        if post is None:
            post = NormalInverseGamma(self.prior_mean, self.prior_strength, self.prior_shape, self.prior_scale)
            self._posteriors[offer] = post
        return post

    def win_probabilities(self, offers: Sequence[str], rng: np.random.Generator) -> np.ndarray:
        """Monte Carlo estimate of P(offer has the highest sampled mean), before the exploration floor."""
        posts = [self._posterior(o) for o in offers]
        means = np.array([p.mean for p in posts])
        spreads = np.array([p.mean_spread() for p in posts])
        dof = np.array([2.0 * p.shape for p in posts])
        draws = means + spreads * rng.standard_t(dof, size=(self.mc_samples, len(offers)))
        wins = np.bincount(draws.argmax(axis=1), minlength=len(offers))
        return wins / self.mc_samples

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        probabilities = with_floor(self.win_probabilities(offers, rng), self.propensity_floor)
        scores = {o: round(self._posterior(o).mean, 6) for o in offers}
        return sample_choice(offers, probabilities, rng, scores)

    def update(
        self, context: Mapping[str, float], offer: str, reward: float, propensity: float, converted: bool | None = None
    ) -> None:
        x = float(reward)
        self._posterior(offer).update(x)
        self._updates += 1
        since = self._since.setdefault(offer, [0.0, 0.0, 0.0])
        since[0] += 1.0
        since[1] += x
        since[2] += x * x

    def lesson(self) -> Lesson | None:
        """Each offer's count, sum and sum of squares of the rewards since the last lesson (exact to fold)."""
        if not self._since:
            return None
        since, self._since = self._since, {}
        return {"policy": self.name, "offers": since}

    def whole_lesson(self) -> Lesson | None:
        """Each offer's count, sum and sum of squares, recovered from its posterior (the conjugate update
        inverted: the prior is known)."""
        if not self._updates:
            return None
        k0, m0, b0 = self.prior_strength, self.prior_mean, self.prior_scale
        offers = {}
        for offer, post in sorted(self._posteriors.items()):
            n = post.strength - k0
            if n <= 0:
                continue
            total = post.mean * post.strength - k0 * m0
            mean = total / n
            spread = 2.0 * (post.scale - b0) - k0 * n * (mean - m0) ** 2 / (k0 + n)
            offers[offer] = [n, total, spread + n * mean * mean]
        return {"policy": self.name, "offers": offers}

    def fold(self, lesson: Mapping[str, Any]) -> None:
        if lesson.get("policy") != self.name:
            raise LessonMismatch(f"a lesson of {lesson.get('policy')!r} is not for the {self.name!r} policy")
        for offer, (n, total, squares) in sorted(lesson["offers"].items()):
            self._posterior(offer).fold(n, total, squares)
            self._updates += int(n)

    def snapshot(self) -> dict[str, Any]:
        return {
            "updates": self._updates,
            "posteriors": {o: asdict(p) for o, p in sorted(self._posteriors.items())},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self._updates = int(state["updates"])
        self._posteriors = {o: NormalInverseGamma(**p) for o, p in state["posteriors"].items()}
        self._since = {}
