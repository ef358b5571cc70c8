"""The bandit policies' settings (section ``policy``): which policy decides, and every policy's knobs.

Each field is named exactly like the constructor argument it feeds (:mod:`bandits.factory` passes them through
unrenamed), so a knob means the same in a settings file, an environment variable and the code.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bandits.context import DEFAULT_CONTEXT, DEFAULT_LIFT_CONTEXT, ContextEncoder
from bandits.eligibility import EligibilityRule
from bandits.linear import LIFT_BY, VALUE_KEY, WARM_START

PolicyName = Literal["linear_thompson", "linucb", "thompson", "uniform", "fixed"]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)


class PolicySettings(BaseModel):
    """Which bandit policy decides, and its knobs (see ``bandits/``: each policy's docstring says what they do)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PolicyName = Field("linear_thompson", description="the policy that decides (bandits/factory.py)")
    mc_samples: int = Field(1000, ge=10, le=1_000_000, description="Monte Carlo draws for TS propensities")
    propensity_floor: float = Field(0.01, ge=0, lt=1, description="no eligible offer is chosen less often")
    context: tuple[str, ...] = Field(
        DEFAULT_CONTEXT, min_length=1, description="linear policies' context terms (see bandits/context.py)"
    )
    lift_context: tuple[str, ...] = Field(
        DEFAULT_LIFT_CONTEXT,
        description="linear policies: terms on which offers' effects differ (coefficients per offer attribute)",
    )
    lift_by: tuple[str, ...] = Field(
        LIFT_BY,
        description=(
            "linear policies: offer attributes (context keys <attribute>:<offer>) the lift terms interact with, "
            "shared by the offers that have them; empty: a block of lift coefficients per offer"
        ),
    )
    prior_precision: float = Field(1.0, gt=0, description="linear policies: prior precision λ of the coefficients")
    noise_prior_shape: float = Field(
        2.0, gt=0, description="linear policies: inverse-gamma shape of the noise variance prior"
    )
    noise_prior_scale: float | None = Field(
        None,
        gt=0,
        description=(
            "linear policies: its scale (prior mean variance scale/(shape-1): one decision's); "
            "unset: sized for the target, 0.25 for purchase (0/1), 300 for profit"
        ),
    )
    lift_prior_precision: float = Field(
        1.0, gt=0, description="linear policies: prior precision of the offers' own (lift) coefficients"
    )
    prior_coefficients: dict[str, float] = Field(
        default_factory=lambda: dict(WARM_START),
        description="linear policies: prior mean of a context term's coefficient (warm start from the snapshot)",
    )
    value_key: str | None = Field(
        VALUE_KEY, description="linear policies: context key prefix of each offer's value at stake (None: model profit)"
    )
    forget_half_life: float | None = Field(
        20_000.0, gt=0, description="linear policies: rewards after which old evidence weighs half (None: never)"
    )
    target: Literal["purchase", "profit"] = Field(
        "purchase",
        description=(
            "linear policies: what the model is fitted to: whether the decision's session bought (0/1), or the "
            "profit (rows scaled by the value at stake); either way offers rank by P(buy) × value at stake"
        ),
    )
    exploration: float = Field(
        0.5, gt=0, description="linear TS: scale on the posterior spread it samples from (below 1 explores less)"
    )
    conservative: bool = Field(
        True,
        description=(
            "linear TS: stay on baseline_offer unless the posterior allows another offer with baseline_confidence "
            "(it earns more at this context, or the budget covers it; bandits/conservative.py); false: plain TS"
        ),
    )
    baseline_offer: str = Field(
        "none", description="linear TS, conservative: the offer it starts from (the shop's current one)"
    )
    baseline_confidence: float = Field(
        0.8,
        ge=0.5,
        lt=1,
        description="linear TS, conservative: posterior probability the gate and the budget require to allow an offer",
    )
    baseline_budget: float = Field(
        0.005,
        ge=0,
        lt=1,
        description=(
            "linear TS, conservative: share α of the baseline's earnings it may risk to learn (earning at least "
            "(1 - α) × the baseline's on the decisions so far, with baseline_confidence)"
        ),
    )
    ucb_alpha: float = Field(1.5, ge=0, description="LinUCB: predictive standard deviations added to the mean")
    prior_mean: float = Field(0.0, description="conjugate TS: prior mean of each offer's reward")
    prior_strength: float = Field(1.0, gt=0, description="pseudo-observations behind the prior mean")
    prior_shape: float = Field(1.0, gt=0, description="inverse-gamma shape of the reward variance prior")
    prior_scale: float = Field(25.0, gt=0, description="inverse-gamma scale of the reward variance prior")
    fixed_offer: str = Field("none", description="fixed policy: the offer it always shows when eligible")
    eligibility: tuple[EligibilityRule, ...] = Field(
        (), description="rules removing offers from a request before the policy chooses (bandits/eligibility.py)"
    )

    @field_validator("context", "lift_context")
    @classmethod
    def _terms_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        ContextEncoder(value)  # raises ValueError naming the bad term
        return value

    @model_validator(mode="after")
    def _purchase_needs_values(self) -> PolicySettings:
        if self.target == "purchase" and self.value_key is None:
            raise ValueError("target 'purchase' ranks offers by P(buy) × value at stake: it needs a value_key")
        return self
