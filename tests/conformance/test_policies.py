"""The shared checks every bandit policy must pass. A policy registered in bandits.factory joins automatically."""

import copy
import inspect

import numpy as np
import orjson
import pytest

from bandits.base import Policy
from bandits.factory import POLICIES
from bandits.offers import Catalogue
from bandits.settings import PolicySettings

OFFERS = ["none", "discount_5", "discount_10", "discount_15", "free_shipping"]
CATALOGUE = Catalogue()


def shop_context(cart_value: float, **extra: float) -> dict[str, float]:
    """A decision point's context as the processor builds it: features and each offer's value at stake."""
    values = {f"margin_value:{o.name}": 0.3 * cart_value - o.cost(cart_value) for o in CATALOGUE.offers}
    return {"cart_value": cart_value, "mobile": 1.0, **values, **extra}


CONTEXT = shop_context(42.0)


def build(name: str) -> Policy:
    settings = PolicySettings(name=name, mc_samples=500, fixed_offer="discount_5")
    return POLICIES[name](settings)


def trained(name: str) -> Policy:
    policy = build(name)
    rng = np.random.default_rng(0)
    for _ in range(100):  # free shipping sells twice as often; a purchase earns the offer's value at stake
        offer = OFFERS[int(rng.integers(len(OFFERS)))]
        bought = bool(rng.random() < (0.4 if offer == "free_shipping" else 0.2))
        reward = CONTEXT[f"margin_value:{offer}"] if bought else 0.0
        policy.update(CONTEXT, offer, reward, 0.2, converted=bought)
    return policy


@pytest.fixture(params=sorted(POLICIES))
def name(request):
    return request.param


def test_follows_the_protocol(name):
    assert isinstance(build(name), Policy)


def test_choice_is_eligible_and_propensities_are_honest(name):
    policy = trained(name)
    for eligible in (OFFERS, OFFERS[:2], ["free_shipping"]):
        c = policy.choose(CONTEXT, eligible, np.random.default_rng(1))
        assert c.offer in eligible
        assert set(c.propensities) == set(eligible)
        assert sum(c.propensities.values()) == pytest.approx(1.0)
        assert 0.0 < c.propensity <= 1.0 and c.propensities[c.offer] == c.propensity


def test_empirical_choice_frequencies_match_the_logged_propensities(name):
    """Calibration: with a frozen posterior, over many decisions on varied contexts, each offer is chosen as often
    as its mean logged propensity says, within four binomial standard deviations (Σ p(1-p) over the draws)."""
    policy = trained(name)
    rng = np.random.default_rng(2)
    picks = []
    for i in range(3000):
        context = shop_context(float(rng.uniform(5, 200)), segment=float(i % 4))
        picks.append(policy.choose(context, OFFERS, rng))
    for offer in OFFERS:
        p = np.array([c.propensities[offer] for c in picks])
        chosen = np.array([c.offer == offer for c in picks])
        tolerance = 4.0 * np.sqrt((p * (1 - p)).sum()) / len(picks) + 1e-9
        assert abs(chosen.mean() - p.mean()) <= tolerance, (offer, chosen.mean(), p.mean(), tolerance)


def test_every_eligible_offer_keeps_the_exploration_floor(name):
    policy = trained(name)
    floor = getattr(policy, "propensity_floor", 0.0)
    for eligible in (OFFERS, OFFERS[1:4]):
        c = policy.choose(CONTEXT, eligible, np.random.default_rng(3))
        assert min(c.propensities.values()) >= min(floor, 1 / len(eligible)) * (1 - 1e-9)


def test_same_seed_same_choice(name):
    policy = trained(name)
    a = policy.choose(CONTEXT, OFFERS, np.random.default_rng(7))
    b = policy.choose(CONTEXT, OFFERS, np.random.default_rng(7))
    assert a == b


def test_inputs_are_not_mutated(name):
    policy = trained(name)
    context, offers = dict(CONTEXT), list(OFFERS)
    policy.choose(context, offers, np.random.default_rng(0))
    policy.update(context, offers[0], 1.0, 0.2)
    assert context == CONTEXT and offers == OFFERS


def test_snapshot_survives_json_and_restores_an_equal_policy(name):
    policy = trained(name)
    twin = build(name)
    twin.restore(orjson.loads(orjson.dumps(policy.snapshot())))
    assert twin.snapshot() == policy.snapshot() and twin.version == policy.version
    for seed in range(5):
        assert twin.choose(CONTEXT, OFFERS, np.random.default_rng(seed)) == policy.choose(
            CONTEXT, OFFERS, np.random.default_rng(seed)
        )


def test_an_untrained_policy_snapshot_restores_too(name):
    """A worker checkpoints before its first batch: an empty policy's snapshot must load back."""
    policy = build(name)
    twin = build(name)
    twin.restore(orjson.loads(orjson.dumps(policy.snapshot())))
    assert twin.snapshot() == policy.snapshot()
    assert twin.choose(CONTEXT, OFFERS, np.random.default_rng(3)) == policy.choose(
        CONTEXT, OFFERS, np.random.default_rng(3)
    )


def test_clones_are_independent(name):
    policy = trained(name)
    clone = copy.deepcopy(policy)
    before = orjson.dumps(policy.snapshot())
    for _ in range(20):
        clone.update(CONTEXT, "none", 100.0, 0.2)
    assert orjson.dumps(policy.snapshot()) == before


def test_a_new_offer_can_appear(name):
    policy = trained(name)
    c = policy.choose(CONTEXT, [*OFFERS, "gift_wrap"], np.random.default_rng(0))
    assert "gift_wrap" in c.propensities
    if getattr(policy, "propensity_floor", 0) > 0:  # exploring policies must be able to try it
        assert c.propensities["gift_wrap"] >= policy.propensity_floor * 0.999


def _constructor_arguments(cls: type) -> set[str]:
    """Named arguments of the class's constructors, the bases' included (subclasses pass ``**kwargs`` on)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
    return names


# Every knob set away from its default, so that a knob dropped or renamed on its way shows as the default.
CHANGED_KNOBS = PolicySettings(
    mc_samples=321,
    propensity_floor=0.02,
    prior_precision=1.7,
    noise_prior_shape=2.5,
    noise_prior_scale=0.3,
    lift_prior_precision=0.6,
    forget_half_life=12_345.0,
    exploration=0.7,
    conservative=False,
    baseline_offer="discount_5",
    baseline_confidence=0.95,
    baseline_budget=0.02,
    ucb_alpha=0.9,
    prior_mean=0.5,
    prior_strength=2.0,
    prior_shape=1.5,
    prior_scale=30.0,
    fixed_offer="discount_10",
)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_knob_reaches_the_constructor_under_its_settings_name(name):
    settings = CHANGED_KNOBS.model_copy(update={"name": name})
    policy = POLICIES[name](settings)
    shared = _constructor_arguments(type(policy)) & set(PolicySettings.model_fields)
    for knob in shared:
        value = getattr(settings, knob)
        kept = getattr(policy, knob)
        assert kept == (tuple(value) if isinstance(kept, tuple) else value), f"{name}: {knob} is {kept!r}"
    every_argument = _constructor_arguments(type(policy))
    assert every_argument <= set(PolicySettings.model_fields), (
        f"{name} takes {sorted(every_argument - set(PolicySettings.model_fields))}, which no setting names"
    )
