"""Conservative mode (``policy.conservative``, the default): linear TS starts from the baseline offer and shows
another only where the gate (it earns more at this context) or the budget (the decisions so far stay above
(1 − α) × the baseline's) allows it with the stated confidence; the propensities stay those it drew from."""

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from bandits.factory import make_policy
from bandits.linear_thompson import LinearThompson
from bandits.offers import Catalogue
from bandits.settings import PolicySettings
from stream.engine.processor import offer_terms

OFFERS = list(Catalogue().names)
TERMS = offer_terms(Catalogue().offers)
FLOOR = 0.01


def context(from_ads: float, cart: float = 40.0) -> dict[str, float]:
    values = {o.name: 0.3 * cart - o.cost(cart) for o in Catalogue().offers}
    return {"from_ads": from_ads} | TERMS | {f"margin_value:{o}": v for o, v in values.items()}


def buy_probability(from_ads: float, offer: str) -> float:
    """Shoppers from ads buy four times as often with free shipping; the others do not care."""
    return 0.1 + (0.3 if from_ads and offer == "free_shipping" else 0.0)


def policy(**knobs) -> LinearThompson:
    settings = PolicySettings(context=("from_ads",), lift_context=("from_ads",), mc_samples=500, **knobs)
    built = make_policy(settings)
    assert isinstance(built, LinearThompson)
    return built


def teach(ts: LinearThompson, n: int, offers: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        from_ads = float(i % 2)
        offer = offers[int(rng.integers(len(offers)))]
        bought = bool(rng.random() < buy_probability(from_ads, offer))
        c = context(from_ads)
        ts.update(c, offer, c[f"margin_value:{offer}"] if bought else 0.0, 0.2, converted=bought)


def test_it_is_on_by_default_from_none():
    settings = PolicySettings()
    assert settings.conservative and settings.baseline_offer == "none"
    assert make_policy(settings).conservative  # type: ignore[attr-defined]


def test_knowing_nothing_it_shows_the_baseline_but_for_the_exploration_floor():
    c = policy().choose(context(1.0), OFFERS, np.random.default_rng(0))
    others = [p for o, p in c.propensities.items() if o != "none"]
    assert c.propensities["none"] == pytest.approx(1 - FLOOR * (len(OFFERS) - 1))
    assert others == pytest.approx([FLOOR] * (len(OFFERS) - 1))


def test_it_moves_away_only_where_the_posterior_is_confident_it_earns_more():
    ts = policy(baseline_budget=0.0)
    teach(ts, 3000, OFFERS)
    from_ads = ts.choose(context(1.0), OFFERS, np.random.default_rng(1))
    assert from_ads.propensities["free_shipping"] > 0.9  # ×4 the buyers at 63 % of the margin
    others = ts.choose(context(0.0), OFFERS, np.random.default_rng(1))
    assert others.propensities["none"] == pytest.approx(1 - FLOOR * (len(OFFERS) - 1))


def test_plain_thompson_sampling_explores_where_the_conservative_policy_keeps_to_the_baseline():
    """Shoppers not from ads buy as often whatever the offer, so none, which keeps the most, is best for them."""
    plain, conservative = policy(conservative=False), policy()
    for ts in (plain, conservative):
        teach(ts, 400, OFFERS)
    p_plain = plain.choose(context(0.0), OFFERS, np.random.default_rng(2)).propensities["none"]
    p_conservative = conservative.choose(context(0.0), OFFERS, np.random.default_rng(2)).propensities["none"]
    assert p_plain < 0.8
    assert p_conservative == pytest.approx(1 - FLOOR * (len(OFFERS) - 1))


def test_the_budget_earned_on_the_baseline_pays_for_exploring():
    """The same posterior, learned from the baseline alone: without a budget nothing else is allowed; allowed to
    risk half of what the baseline earned, the uncertain offers are (Thompson sampling then chooses)."""
    strict, funded = policy(baseline_budget=0.0), policy(baseline_budget=0.5)
    for ts in (strict, funded):
        teach(ts, 400, ["none"])
    c = context(1.0)
    assert strict.choose(c, OFFERS, np.random.default_rng(3)).propensities["none"] > 0.95
    assert funded.choose(c, OFFERS, np.random.default_rng(3)).propensities["none"] < 0.9


def test_showing_a_worse_offer_spends_the_budget():
    ts = policy(forget_half_life=None)
    teach(ts, 2000, OFFERS)
    before = ts._budget.vector(ts._posterior.dim) @ ts._posterior.mean
    c = context(0.0)
    for _ in range(50):  # discount_15: the same buyers, less margin
        ts.update(c, "discount_15", 0.0, 0.01, converted=False)
    after = ts._budget.vector(ts._posterior.dim) @ ts._posterior.mean
    assert after < before


def test_where_the_baseline_is_not_eligible_it_chooses_as_plain_thompson_sampling():
    plain, conservative = policy(conservative=False), policy()
    for ts in (plain, conservative):
        teach(ts, 300, OFFERS)
    eligible = [o for o in OFFERS if o != "none"]
    assert conservative.choose(context(1.0), eligible, np.random.default_rng(4)) == plain.choose(
        context(1.0), eligible, np.random.default_rng(4)
    )


def test_a_snapshot_from_before_conservative_mode_restores_with_an_empty_budget():
    ts = policy()
    teach(ts, 200, OFFERS)
    state = orjson.loads(orjson.dumps(ts.snapshot()))
    assert np.any(state.pop("budget"))
    twin = policy()
    twin.restore(state)
    assert not np.any(twin._budget.vector(twin._posterior.dim))
    assert twin.snapshot()["posterior"] == ts.snapshot()["posterior"]


@pytest.mark.parametrize(
    ("knob", "value"), [("baseline_confidence", 0.4), ("baseline_confidence", 1.0), ("baseline_budget", 1.0)]
)
def test_a_confidence_or_budget_out_of_range_is_refused(knob, value):
    with pytest.raises(ValidationError, match=knob):
        PolicySettings(**{knob: value})
    with pytest.raises(ValueError, match=knob):
        LinearThompson(**{knob: value})
