"""The intent learner: a calibrated prior before learning, a good ranking after, and a drift alarm when the
concept flips."""

from __future__ import annotations

import math
import random

import pytest

from models.learners.intent import IntentLearner


def auc(scores: list[float], labels: list[bool]) -> float:
    """Rank-based ROC AUC (Mann-Whitney), ties counted half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def session(rng: random.Random, flip: bool = False) -> tuple[dict[str, float], bool]:
    """Buying depends on adds, cart value (on its own scale) and checkouts; the rest is noise."""
    x = {
        "adds": float(rng.randint(0, 4)),
        "cart_value": round(rng.lognormvariate(3.5, 0.8), 2),
        "checkouts": float(rng.random() < 0.3),
        "mobile": float(rng.random() < 0.7),
        "hour_of_day": float(rng.randrange(24)),
    }
    logit = -3.0 + 0.9 * x["adds"] + 0.01 * x["cart_value"] + 1.5 * x["checkouts"]
    y = rng.random() < 1.0 / (1.0 + math.exp(-logit))
    return x, (not y) if flip else y


def test_before_learning_it_predicts_the_base_rate():
    assert IntentLearner().predict_one({"adds": 3.0}) == pytest.approx(0.5)
    assert IntentLearner(base_rate=0.03).predict_one({"adds": 3.0}) == pytest.approx(0.03)
    with pytest.raises(ValueError):
        IntentLearner(base_rate=1.0)


def test_ranks_held_out_sessions_well():
    rng = random.Random(0)
    model = IntentLearner(seed=0)
    for _ in range(5_000):
        model.learn_one(*session(rng))
    held_out = [session(rng) for _ in range(2_000)]
    scores = [model.predict_one(x) for x, _ in held_out]
    assert all(0.0 < s < 1.0 for s in scores)
    assert auc(scores, [y for _, y in held_out]) > 0.8
    rate = sum(y for _, y in held_out) / len(held_out)
    assert sum(scores) / len(scores) == pytest.approx(rate, abs=0.05)  # and is roughly calibrated


def test_needs_a_label():
    with pytest.raises(ValueError):
        IntentLearner().learn_one({"adds": 1.0}, None)


@pytest.mark.parametrize("seed", range(3))
def test_drift_alarm_after_the_concept_flips_not_before(seed):
    rng = random.Random(seed)
    model = IntentLearner(seed=0)
    for i in range(6_000):
        model.learn_one(*session(rng), ts_ms=i)
    assert model.drift.alarms == 0
    for i in range(6_000, 7_000):
        model.learn_one(*session(rng, flip=True), ts_ms=i)
    assert model.drift.alarms >= 1
    assert model.drift.last_alarm_ts_ms is not None and 6_000 <= model.drift.last_alarm_ts_ms < 6_500
