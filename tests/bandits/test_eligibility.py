"""Eligibility rules restrict the offers a request may get, and the propensities the policy logs reflect it."""

import pytest
from factories import MINUTE, T0, event, records, settings

from bandits.eligibility import Eligibility, EligibilityRule
from bandits.offers import Catalogue
from stream.app.build import build_processor
from stream.core.errors import ConfigError

RULES = [
    {"when": "cart_value > 150", "offers": ["free_shipping"]},
    {"when": "cart_value < 20", "max_share": 0.05},
]


def decisions_for(carts: list[float]) -> list[dict]:
    core = build_processor(settings(policy={"name": "linear_thompson", "eligibility": RULES}))
    evs = []
    for i, cart in enumerate(carts):
        s, u, t = f"s{i}", f"u{i}", T0 + i * MINUTE
        evs.append(event(f"v{i}", "product_view", ts=t, user=u, session=s, product_id="p1", price=cart))
        evs.append(event(f"c{i}", "add_to_cart", ts=t + 1000, user=u, session=s, product_id="p1", price=cart))
    outs = core.process_batch(records(evs))
    return [o.body for o in outs if o.kind.value == "decision"]


def test_rules_remove_offers_and_the_propensities_cover_only_the_eligible():
    ds = decisions_for([200.0, 10.0, 60.0] * 20)
    assert len(ds) == 60
    for d in ds:
        cart = d["features"]["cart_value"]
        expected = {"none", "discount_5", "discount_10", "discount_15", "free_shipping"}
        if cart > 150:
            expected -= {"free_shipping"}
        if cart < 20:
            expected -= {"discount_10", "discount_15"}
        assert set(d["eligible"]) == expected == set(d["propensities"]), cart
        assert d["offer"] in expected
        assert sum(d["propensities"].values()) == pytest.approx(1.0)
        assert d["propensities"][d["offer"]] == d["propensity"]


def test_a_missing_feature_never_triggers_a_rule_and_none_is_never_removed():
    rules = Eligibility([EligibilityRule(when="segment == 1", offers=("none", "discount_15"))], Catalogue())
    assert rules.eligible({"segment": 1.0}) == ("none", "discount_5", "discount_10", "free_shipping")
    assert rules.eligible({}) == Catalogue().names


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": "cart_value >> 3", "offers": ["free_shipping"]}, "FEATURE OP NUMBER"),
        ({"when": "cart_value > 3", "offers": ["free_lunch"]}, "free_lunch"),
    ],
)
def test_bad_rules_are_refused_at_start_up(rule, message):
    with pytest.raises(ConfigError, match=message):
        settings(policy={"eligibility": [rule]})
