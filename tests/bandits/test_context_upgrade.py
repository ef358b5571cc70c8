"""A policy snapshot taken with a wider context (the defaults before the snapshot's terms left them) restores
into a narrower one exactly: as if the dropped terms had never been in the context."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bandits.linear_thompson import LinearThompson
from bandits.offers import Catalogue
from stream.engine.processor import offer_terms

TERMS = offer_terms(Catalogue().offers)
OFFERS = list(Catalogue().names)
WIDE = {"context": ("snap", "from_ads", "arm:buy"), "lift_context": ("snap", "from_ads")}
NARROW = {"context": ("from_ads",), "lift_context": ("from_ads",)}


def policy(layout: dict, **knobs) -> LinearThompson:
    return LinearThompson(**layout, value_key=None, target="profit", **knobs)


def teach(policies: list[LinearThompson], n: int = 2000) -> None:
    """The same (context, offer, reward) sequence for each; the snapshot's terms vary and carry a little signal."""
    rng = np.random.default_rng(5)
    for _ in range(n):
        ads = float(rng.random() < 0.5)
        snap = float(rng.random())
        offer = OFFERS[int(rng.integers(len(OFFERS)))]
        context = {"from_ads": ads, "snap": snap} | {f"buy:{o}": 0.1 + 0.05 * snap for o in OFFERS} | TERMS
        bought = rng.random() < 0.2 + 0.3 * ads * (offer == "free_shipping") + 0.1 * snap
        for p in policies:
            p.update(context, offer, 10.0 * bought, 0.2, converted=bool(bought))


@pytest.mark.parametrize("conservative", [False, True])
def test_a_snapshot_of_a_wider_context_restores_as_if_the_terms_were_never_there(conservative):
    knobs = {"conservative": conservative, "forget_half_life": None}
    wide, narrow = policy(WIDE, **knobs), policy(NARROW, **knobs)
    teach([wide, narrow])
    upgraded = policy(NARROW, **knobs)
    upgraded.restore(orjson.loads(orjson.dumps(wide.snapshot())))
    assert upgraded.column_names() == narrow.column_names()
    a, b = upgraded._posterior, narrow._posterior
    assert np.allclose(a.mean, b.mean, atol=1e-9) and np.allclose(a.noise(), b.noise(), rtol=1e-9)
    if conservative:
        dim = b.dim
        assert np.allclose(upgraded._budget.vector(dim), narrow._budget.vector(dim), atol=1e-9)
    context = {"from_ads": 1.0} | TERMS
    rng = np.random.default_rng(1), np.random.default_rng(1)
    assert upgraded.choose(context, OFFERS, rng[0]).propensities == pytest.approx(
        narrow.choose(context, OFFERS, rng[1]).propensities, abs=1e-9
    )


def test_with_forgetting_the_statistics_match_with_the_prior_owed_back():
    """Forgetting owes prior mass back axis by axis; a restore through a narrower context pays it back at once,
    so the two agree on the settled statistics (data and the whole prior), not on the order of repayment."""
    wide, narrow = policy(WIDE, forget_half_life=3000.0), policy(NARROW, forget_half_life=3000.0)
    teach([wide, narrow])
    upgraded = policy(NARROW, forget_half_life=3000.0)
    upgraded.restore(wide.snapshot())
    for got, want in zip(upgraded._posterior.settled(), narrow._posterior.settled(), strict=True):
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_a_snapshot_restores_into_a_wider_context_only_by_refusing():
    narrow = policy(NARROW)
    teach([narrow], n=200)
    with pytest.raises(ValueError, match="may only drop context terms"):
        policy(WIDE).restore(narrow.snapshot())
