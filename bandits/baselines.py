"""Reference policies: uniform random (the ideal logging policy for evaluation) and one fixed offer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bandits.base import Choice, sample_choice
from stream.core.lessons import LessonMismatch


class _Unlearning:
    """Policies that learn nothing: updates are ignored and there is no state to snapshot."""

    def update(
        self, context: Mapping[str, float], offer: str, reward: float, propensity: float, converted: bool | None = None
    ) -> None:
        return None

    def lesson(self) -> None:
        return None

    def whole_lesson(self) -> None:
        return None

    def fold(self, lesson: Mapping[str, Any]) -> None:
        raise LessonMismatch(f"a lesson of {lesson.get('policy')!r} for a policy that learns nothing")

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        return None


class UniformPolicy(_Unlearning):
    """Every eligible offer with equal probability; learns nothing."""

    name = "uniform"
    version = "uniform"

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        return sample_choice(offers, np.full(len(offers), 1.0 / len(offers)), rng, {})


class FixedOfferPolicy(_Unlearning):
    """Always the same offer when it is eligible (propensity 1); otherwise uniform over the eligible ones."""

    name = "fixed"

    def __init__(self, fixed_offer: str = "none") -> None:
        self.fixed_offer = fixed_offer

    @property
    def version(self) -> str:
        return f"fixed:{self.fixed_offer}"

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        if self.fixed_offer in offers:
            probabilities = np.array([1.0 if o == self.fixed_offer else 0.0 for o in offers])
        else:
            probabilities = np.full(len(offers), 1.0 / len(offers))
        return sample_choice(offers, probabilities, rng, {})
