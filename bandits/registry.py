"""Builds the configured policy. New policies register here and join the conformance suite automatically."""

from __future__ import annotations

from collections.abc import Callable

from bandits.base import Policy
from bandits.baselines import FixedOfferPolicy, UniformPolicy
from bandits.thompson import ConjugateThompson
from stream.settings import PolicySettings


def _thompson(s: PolicySettings) -> Policy:
    return ConjugateThompson(
        mc_samples=s.mc_samples,
        propensity_floor=s.propensity_floor,
        prior_mean=s.prior_mean,
        prior_strength=s.prior_strength,
        prior_shape=s.prior_shape,
        prior_scale=s.prior_scale,
    )


POLICIES: dict[str, Callable[[PolicySettings], Policy]] = {
    "thompson": _thompson,
    "uniform": lambda s: UniformPolicy(),
    "fixed": lambda s: FixedOfferPolicy(s.fixed_offer),
}


def make_policy(settings: PolicySettings) -> Policy:
    """The policy named in ``settings.name``, built from its knobs."""
    return POLICIES[settings.name](settings)
