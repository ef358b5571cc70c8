"""The bandit-policy protocol every policy follows, and the choice it returns.

A policy picks one of the eligible offers for a context and says how likely that pick was (the propensity,
logged with the decision so any other policy can be evaluated off-line). It learns from rewards with
:meth:`Policy.update` (and from whether the shopper bought, for policies that model purchases), and its learned
state snapshots to JSON-able data and restores.

Randomness comes in through ``rng``: the caller derives it from the run's seed and the decision, so the same
input and seed give the same choices whatever the batch size or restart history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stream.core.lessons import Shareable


@dataclass(frozen=True, slots=True)
class Choice:
    """The offer chosen, the probability the policy had of choosing it, and the numbers behind it."""

    offer: str
    propensity: float
    propensities: Mapping[str, float]
    scores: Mapping[str, float]


@runtime_checkable
class Policy(Shareable, Protocol):
    """Choose an offer with its propensity; learn from its reward; share what it learned with a fleet (lessons,
    :mod:`stream.core.lessons`); snapshot and restore."""

    name: str

    @property
    def version(self) -> str:
        """Identifies the learned state the choice came from (logged with every decision)."""
        ...

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice: ...

    def update(
        self, context: Mapping[str, float], offer: str, reward: float, propensity: float, converted: bool | None = None
    ) -> None:
        """Learn the reward of ``offer`` shown at ``context`` with ``propensity``; ``converted`` says whether the
        shopper bought (the processor knows; a log may not: None), for policies that learn who buys."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


def with_floor(probabilities: np.ndarray, floor: float) -> np.ndarray:
    """Mix ``probabilities`` with the uniform so each is at least ``floor`` (when the floor is feasible).

    >>> with_floor(np.array([1.0, 0.0]), 0.1).round(3).tolist()
    [0.9, 0.1]
    """
    k = probabilities.size
    floor = min(floor, 1.0 / k)
    if floor <= 0.0:
        return probabilities
    return (1.0 - k * floor) * probabilities + floor


def sample_choice(
    offers: Sequence[str], probabilities: np.ndarray, rng: np.random.Generator, scores: Mapping[str, float]
) -> Choice:
    """Draw an offer from ``probabilities`` and report exactly that probability as its propensity."""
    probabilities = probabilities / probabilities.sum()
    index = int(rng.choice(len(offers), p=probabilities))
    return Choice(
        offer=offers[index],
        propensity=float(probabilities[index]),
        propensities={o: float(p) for o, p in zip(offers, probabilities, strict=True)},
        scores=dict(scores),
    )
