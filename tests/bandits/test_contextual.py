"""The contextual policy: it learns who should get which offer when the context says so, and on the simulated shop
it never settles on the biggest discount."""

import numpy as np
import pytest

from bandits.factory import make_policy
from bandits.offers import Catalogue
from bandits.settings import PolicySettings
from bench.machine import process_pool
from bench.policies import closed_loop
from stream.engine.processor import offer_terms

OFFERS = Catalogue().names
MARGIN = 0.3


def buy_probability(from_ads: bool, cart: float, offer: str) -> float:
    """Shoppers from ads buy with a discount (10 % best), the others buy anyway; free shipping helps small carts."""
    p = 0.20 if from_ads else 0.45
    lift = {"discount_5": 0.15, "discount_10": 0.35, "discount_15": 0.40} if from_ads else {"discount_5": 0.01}
    p += lift.get(offer, 0.0)
    if offer == "free_shipping":
        p += 0.15 if cart < 40 else 0.02
    return p


def run(policy_name: str, rounds: int = 4000, seed: int = 0) -> tuple[float, dict[str, float]]:
    """Expected profit of the policy's choices, and of always showing each offer, on the same contexts."""
    settings = PolicySettings(name=policy_name, context=("from_ads", "log1p:cart_value"), mc_samples=300)
    policy = make_policy(settings)
    catalogue = Catalogue()
    terms = offer_terms(catalogue.offers)
    rng = np.random.default_rng(seed)
    earned, fixed, oracle = 0.0, dict.fromkeys(OFFERS, 0.0), 0.0
    for i in range(rounds):
        from_ads, cart = bool(rng.random() < 0.4), float(rng.uniform(10, 150))
        values = {o.name: MARGIN * cart - o.cost(cart) for o in catalogue.offers}
        context = {"from_ads": float(from_ads), "cart_value": cart} | {
            f"margin_value:{o}": v for o, v in values.items()
        }
        context |= terms  # the offers' terms, as the processor gives them
        expected = {o: buy_probability(from_ads, cart, o) * values[o] for o in OFFERS}
        for o in OFFERS:
            fixed[o] += expected[o]
        oracle += max(expected.values())
        choice = policy.choose(context, OFFERS, np.random.default_rng([seed, i]))
        earned += expected[choice.offer]
        bought = rng.random() < buy_probability(from_ads, cart, choice.offer)
        policy.update(context, choice.offer, values[choice.offer] if bought else 0.0, choice.propensity)
    fixed["oracle"] = oracle
    return earned, fixed


def test_linear_thompson_beats_the_best_fixed_offer_and_the_non_contextual_thompson_when_context_matters():
    linear, fixed = run("linear_thompson")
    thompson, _ = run("thompson")
    oracle = fixed.pop("oracle")
    best_fixed = max(fixed.values())
    print(
        f"linear TS {linear / oracle:.3f}, non-contextual TS {thompson / oracle:.3f}, best fixed "
        f"{best_fixed / oracle:.3f} of the oracle"
    )
    assert linear > 1.05 * best_fixed, (linear, fixed)
    assert linear > 1.05 * thompson, (linear, thompson)
    assert linear > 0.9 * oracle


@pytest.mark.slow
def test_on_the_simulated_shop_it_learns_and_never_settles_on_the_biggest_discount():
    out = closed_loop("stationary", days=30, users=3000, seed=3, policy="linear_thompson")
    uniform = sum(out["fixed_profit"].values()) / len(out["fixed_profit"])  # a uniform policy, same decisions
    print(
        f"linear TS: {out['oracle_fraction']:.3f} of the oracle, {out['vs_best_fixed']:.3f}x the best fixed offer "
        f"({out['best_fixed_offer']}), discount_15 in the last third {out['late_discount_15_share']:.3f}"
    )
    assert out["decisions"] > 3000
    assert out["late_discount_15_share"] < 0.08
    assert out["fixed_profit"]["discount_15"] < min(out["fixed_profit"]["none"], out["fixed_profit"]["discount_5"])
    assert out["chosen_profit"] > 1.03 * uniform


@pytest.mark.slow
def test_on_both_scenarios_linear_ts_out_earns_the_best_fixed_offer_and_non_contextual_ts_over_30_days():
    """The issue's bar, closed loop on the simulated shop at a shop's traffic: 20,000 shoppers (~850 decisions a
    day), 30 days, seed 3, the default policy; the best fixed offer is scored by the simulator on exactly the
    decisions the policy faced. This pins one run per scenario, not a general claim: ``make bench-policies``
    measures 60 days at 40,000 shoppers, and README gives the figures across seeds."""
    runs = [(scenario, name) for scenario in ("stationary", "abrupt") for name in ("linear_thompson", "thompson")]
    # the runs are independent and deterministic: side by side on two cores, same figures, half the wait
    with process_pool(2) as pool:
        futures = {run: pool.submit(closed_loop, run[0], days=30, users=20_000, seed=3, policy=run[1]) for run in runs}
        out = {run: future.result() for run, future in futures.items()}
    for scenario in ("stationary", "abrupt"):
        linear, thompson = out[scenario, "linear_thompson"], out[scenario, "thompson"]
        print(
            f"{scenario}: linear TS {linear['oracle_fraction']:.4f} of the oracle, {linear['vs_best_fixed']:.4f}x "
            f"the best fixed offer ({linear['best_fixed_offer']}); non-contextual TS {thompson['oracle_fraction']:.4f}"
        )
        assert linear["decisions"] == thompson["decisions"] > 20_000
        assert linear["chosen_profit"] > linear["best_fixed_profit"]
        assert linear["chosen_profit"] > thompson["chosen_profit"]
