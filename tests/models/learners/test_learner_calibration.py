"""Online learners' Platt scaling (models/learners/calibration.py): fitted on the predictions each learner made
before learning an example, shared across a fleet exactly, kept in snapshots."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
import pytest

from models.learners.calibration import OnlinePlatt
from models.learners.intent import IntentLearner


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def overconfident(n: int, seed: int) -> list[tuple[float, bool]]:
    """A model's probabilities three times as extreme (on the log-odds) as the truth, which is shifted too."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        m = rng.gauss(0.0, 1.5)
        out.append((sigmoid(m), rng.random() < sigmoid(m / 3 - 0.5)))
    return out


def log_loss(pairs: list[tuple[float, bool]]) -> float:
    return -sum(math.log(p if y else 1 - p) for p, y in pairs) / len(pairs)


def test_an_overconfident_model_is_calibrated_on_what_it_predicted_before_learning():
    cal = OnlinePlatt()
    for p, y in overconfident(4000, seed=1):
        cal.learn(p, y)
    held_out = overconfident(4000, seed=2)
    raw, calibrated = log_loss(held_out), log_loss([(cal.apply(p), y) for p, y in held_out])
    truth = log_loss([(sigmoid(math.log(p / (1 - p)) / 3 - 0.5), y) for p, y in held_out])
    assert calibrated < raw - 0.05
    assert calibrated == pytest.approx(truth, abs=0.005)
    platt = cal.platt()
    assert platt is not None and platt.a == pytest.approx(1 / 3, abs=0.06) and platt.b == pytest.approx(-0.5, abs=0.1)


def test_until_enough_is_learned_a_probability_passes_unchanged():
    cal = OnlinePlatt(min_weight=200)
    for p, y in overconfident(199, seed=3):
        cal.learn(p, y)
    assert cal.platt() is None and cal.apply(0.9) == 0.9
    for _ in range(10):  # their decayed worth reaches 200 a few examples later
        cal.learn(0.9, False)
    assert cal.platt() is not None and cal.apply(0.9) < 0.9


def test_it_forgets_at_its_half_life_and_follows_a_changed_shop():
    cal = OnlinePlatt(half_life=500)
    for p, _ in overconfident(3000, seed=4):
        cal.learn(p, True)  # everyone bought
    high = cal.apply(0.5)
    for p, _ in overconfident(3000, seed=5):
        cal.learn(p, False)  # then nobody
    assert high > 0.9 and cal.apply(0.5) < 0.1


def test_a_fleet_shares_it_exactly():
    """Two workers learning halves and folding each other's lessons hold what one learner of every example holds,
    in the order the lessons were folded."""
    pairs = overconfident(1000, seed=6)
    one, a, b = OnlinePlatt(), OnlinePlatt(), OnlinePlatt()
    for p, y in pairs[:400]:
        one.learn(p, y)
        a.learn(p, y)
    b.fold(a.take_lesson())
    for p, y in pairs[400:]:
        one.learn(p, y)
        b.learn(p, y)
    a.fold(b.take_lesson())
    for worker in (a, b):
        assert np.allclose(worker.snapshot()["sums"], one.snapshot()["sums"], rtol=1e-12, atol=1e-12)
        assert worker.apply(0.8) == pytest.approx(one.apply(0.8), abs=1e-12)
    newcomer = OnlinePlatt()
    newcomer.fold(one.whole())
    assert newcomer.apply(0.8) == pytest.approx(one.apply(0.8), abs=1e-12)


def test_a_learner_snapshot_keeps_it_and_one_from_before_calibration_restores_uncalibrated():
    rng = random.Random(7)
    learner = IntentLearner(seed=0, base_rate=0.3)
    for _ in range(3000):
        adds = float(rng.randint(0, 3))
        learner.learn_one({"adds": adds}, rng.random() < 0.1 + 0.1 * adds)
    state = orjson.loads(orjson.dumps(learner.snapshot()))
    twin = IntentLearner(seed=0, base_rate=0.3)
    twin.restore(state)
    assert twin.predict_one({"adds": 3.0}) == learner.predict_one({"adds": 3.0})
    state.pop("calibration")
    old = IntentLearner(seed=0, base_rate=0.3)
    old.restore(state)
    raw = IntentLearner(seed=0, base_rate=0.3, calibrate=False)
    raw.restore(state)
    assert old.predict_one({"adds": 3.0}) == raw.predict_one({"adds": 3.0}) != learner.predict_one({"adds": 3.0})


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="half_life"):
        OnlinePlatt(half_life=0)


def test_the_policy_context_takes_the_learners_own_scores_and_the_predictions_are_calibrated():
    """A calibration refitted as examples arrive would move what the policy's coefficients mean: the processor
    puts each learner's own score in the context (score_one); predict_one is the calibrated probability."""
    from factories import processor

    rng = random.Random(8)
    core = processor(seed=3)
    intent = core.learners["intent"]
    for _ in range(3000):
        adds = float(rng.randint(0, 3))
        intent.learn_one({"adds": adds}, rng.random() < 0.1 + 0.1 * adds)
    x = {"adds": 3.0}
    raw = IntentLearner(seed=3, calibrate=False)
    raw.restore({k: v for k, v in intent.snapshot().items() if k != "calibration"})
    assert intent.score_one(x) == raw.predict_one(x) != intent.predict_one(x)
    del core.learners["segments"]  # it reads the whole behaviour vector; not what is checked here
    assert core.online_scores(x)["intent_online"] == round(intent.score_one(x), 6)
    price = core.learners["price_sensitivity"]
    assert price.score_one(x) == price.predict_one(x)  # nothing learned: no calibration yet
