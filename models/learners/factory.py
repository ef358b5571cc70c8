"""The online learners by name. A learner registered here joins the conformance suite automatically.

>>> learners = make_learners(seed=7)
>>> sorted(learners), learners["intent"].version
(['intent', 'price_sensitivity', 'segments'], 'intent@0')
"""

from __future__ import annotations

from collections.abc import Callable

from models.learners.base import OnlineLearner
from models.learners.intent import IntentLearner
from models.learners.price_sensitivity import PriceSensitivityLearner
from models.learners.segments import SegmentLearner

LEARNERS: dict[str, Callable[..., OnlineLearner]] = {
    "intent": IntentLearner,
    "price_sensitivity": PriceSensitivityLearner,
    "segments": SegmentLearner,
}


def make_learners(seed: int) -> dict[str, OnlineLearner]:
    """One fresh learner of every kind, each with its default hyperparameters and ``seed``."""
    return {name: factory(seed=seed) for name, factory in LEARNERS.items()}
