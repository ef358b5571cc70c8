"""The shared checks every bandit policy must pass. A policy registered in bandits.registry joins automatically."""

import copy

import numpy as np
import orjson
import pytest

from bandits.base import Policy
from bandits.registry import POLICIES
from stream.settings import PolicySettings

OFFERS = ["none", "discount_5", "discount_10", "discount_15", "free_shipping"]
CONTEXT = {"cart_value": 42.0, "mobile": 1.0}


def build(name: str) -> Policy:
    settings = PolicySettings(name=name, mc_samples=500, fixed_offer="discount_5")
    return POLICIES[name](settings)


def trained(name: str) -> Policy:
    policy = build(name)
    rng = np.random.default_rng(0)
    for _ in range(50):
        offer = OFFERS[int(rng.integers(len(OFFERS)))]
        policy.update(CONTEXT, offer, float(rng.normal(3.0 if offer == "free_shipping" else 1.0)), 0.2)
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
    policy = trained(name)
    rng = np.random.default_rng(2)
    picks = [policy.choose(CONTEXT, OFFERS, rng) for _ in range(1500)]
    # Each draw has its own Monte Carlo estimate; the mean propensity is what the frequency must match.
    for offer in OFFERS:
        freq = np.mean([c.offer == offer for c in picks])
        mean_p = np.mean([c.propensities[offer] for c in picks])
        assert abs(freq - mean_p) < 0.04, (offer, freq, mean_p)


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
