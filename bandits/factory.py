"""Builds the configured policy by name. New policies register here and join the conformance suite automatically.

Every knob reaches its constructor under its settings name (``tests/conformance/test_policies.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bandits.base import Policy
from bandits.baselines import FixedOfferPolicy, UniformPolicy
from bandits.linear import HYPERPARAMETERS
from bandits.linear_thompson import LinearThompson
from bandits.linucb import LinUCB
from bandits.settings import PolicySettings
from bandits.thompson import ConjugateThompson


def _thompson(s: PolicySettings) -> Policy:
    return ConjugateThompson(
        mc_samples=s.mc_samples,
        propensity_floor=s.propensity_floor,
        prior_mean=s.prior_mean,
        prior_strength=s.prior_strength,
        prior_shape=s.prior_shape,
        prior_scale=s.prior_scale,
    )


def linear_kwargs(s: PolicySettings) -> dict[str, Any]:
    """The linear policies' constructor arguments from the settings (shared by linear TS and LinUCB)."""
    return {name: getattr(s, name) for name in HYPERPARAMETERS}


POLICIES: dict[str, Callable[[PolicySettings], Policy]] = {
    "linear_thompson": lambda s: LinearThompson(
        exploration=s.exploration,
        conservative=s.conservative,
        baseline_offer=s.baseline_offer,
        baseline_confidence=s.baseline_confidence,
        baseline_budget=s.baseline_budget,
        **linear_kwargs(s),
    ),
    "linucb": lambda s: LinUCB(ucb_alpha=s.ucb_alpha, **linear_kwargs(s)),
    "thompson": _thompson,
    "uniform": lambda s: UniformPolicy(),
    "fixed": lambda s: FixedOfferPolicy(fixed_offer=s.fixed_offer),
}


def make_policy(settings: PolicySettings) -> Policy:
    """The policy named in ``settings.name``, built from its knobs."""
    return POLICIES[settings.name](settings)
