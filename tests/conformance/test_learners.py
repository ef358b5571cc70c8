"""The shared checks every online learner must pass. A learner registered in models.learners.factory joins
automatically.

The stream is generic: 15 session-like features plus the price-sensitivity learner's reserved offer keys (the
others treat them as ordinary features), a purchase label that depends on the features, and inverse-propensity
weights. Unsupervised learners ignore the label.
"""

from __future__ import annotations

import copy
import math
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import orjson
import pytest

from models.learners.base import DriftMonitor, OnlineLearner
from models.learners.factory import LEARNERS, make_learners

ROOT = Path(__file__).resolve().parents[2]

FEATURES = [
    "page_views", "product_views", "searches", "adds", "removes", "checkouts", "cart_value", "avg_price_viewed",
    "session_minutes", "mobile", "hour_of_day", "user_sessions", "user_purchases", "user_revenue",
    "days_since_first_seen",
]  # fmt: skip
OFFERS = [(0.0, 0.0), (0.05, 0.0), (0.10, 0.0), (0.15, 0.0), (0.0, 1.0)]
T0 = 1_767_600_000_000


def example(rng: random.Random) -> dict[str, float]:
    x = {name: round(rng.lognormvariate(0.0, 1.0) * (i + 1), 3) for i, name in enumerate(FEATURES)}
    x["mobile"] = float(rng.random() < 0.7)
    x["hour_of_day"] = float(rng.randrange(24))
    x["offer_share"], x["offer_flat"] = rng.choice(OFFERS)
    return x


def stream(n: int, seed: int = 0) -> list[tuple[dict[str, float], bool, float, int]]:
    """(x, purchased, 1 / propensity, event time) examples."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = example(rng)
        logit = -1.0 + 0.8 * x["adds"] - 0.05 * x["product_views"] + 4.0 * x["offer_share"]
        y = rng.random() < 1.0 / (1.0 + math.exp(-logit))
        out.append((x, y, rng.choice([1.25, 5.0, 20.0]), T0 + 60_000 * i))
    return out


def probes(n: int = 40, seed: int = 99) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [example(rng) for _ in range(n)]


def feed(learner: OnlineLearner, examples) -> None:
    for x, y, w, ts in examples:
        learner.learn_one(x, y, weight=w, ts_ms=ts)


def predictions(learner: OnlineLearner, xs=None) -> list[float]:
    return [learner.predict_one(x) for x in (probes() if xs is None else xs)]


def dumped(learner: OnlineLearner) -> bytes:
    return orjson.dumps(learner.snapshot())


def trained(name: str, n: int = 300, seed: int = 0) -> OnlineLearner:
    learner = LEARNERS[name](seed=seed)
    feed(learner, stream(n))
    return learner


@pytest.fixture(params=sorted(LEARNERS))
def name(request):
    return request.param


def test_follows_the_protocol(name):
    learner = LEARNERS[name](seed=0)
    assert isinstance(learner, OnlineLearner)
    assert learner.name == name
    assert isinstance(learner.drift, DriftMonitor)
    assert learner.version == f"{name}@0"
    assert set(make_learners(seed=0)) == set(LEARNERS)


def test_learns_and_predicts_finite_numbers(name):
    learner = LEARNERS[name](seed=0)
    assert all(math.isfinite(p) for p in predictions(learner))  # before any learning too
    feed(learner, stream(300))
    assert all(math.isfinite(p) for p in predictions(learner))


def test_version_changes_with_learning(name):
    learner = LEARNERS[name](seed=0)
    seen = {learner.version}
    for x, y, w, ts in stream(5):
        learner.learn_one(x, y, weight=w, ts_ms=ts)
        assert learner.version not in seen
        seen.add(learner.version)
    assert learner.version == f"{name}@5"


def test_inputs_are_not_mutated(name):
    learner = trained(name, n=100)
    for x, y, w, ts in stream(20, seed=1):
        original = dict(x)
        learner.learn_one(types.MappingProxyType(x), y, weight=w, ts_ms=ts)  # read-only: a write would raise
        learner.predict_one(types.MappingProxyType(x))
        assert x == original


def test_predicting_does_not_change_the_state(name):
    learner = trained(name)
    before = dumped(learner)
    predictions(learner, [*probes(), {}, {"never_seen": 3.0}, {"cart_value": 1e6}])
    assert dumped(learner) == before


def test_features_may_appear_or_vanish(name):
    learner = LEARNERS[name](seed=0)
    rng = random.Random(3)
    for i, (x, y, w, ts) in enumerate(stream(400)):
        x = {k: v for k, v in x.items() if rng.random() < 0.7}  # features vanish
        if i > 200:
            x[f"new_{i % 7}"] = rng.random()  # and appear
        learner.learn_one(x, y, weight=w, ts_ms=ts)
    for x in [*probes(), {}, {"only_unknown": 1.0}, {"adds": 2.0}]:
        assert math.isfinite(learner.predict_one(x))


def test_non_finite_features_count_as_missing(name):
    learner = trained(name)
    x, y, w, ts = stream(1, seed=5)[0]
    broken = {**x, "cart_value": math.nan, "adds": math.inf}
    learner.learn_one(broken, y, weight=w, ts_ms=ts)
    assert all(math.isfinite(p) for p in predictions(learner, [*probes(), broken]))


def test_same_seed_same_data_same_predictions(name):
    a, b = trained(name, seed=3), trained(name, seed=3)
    assert predictions(a) == predictions(b)
    assert dumped(a) == dumped(b)


def test_snapshot_survives_json_and_restore_is_like_never_stopping(name):
    learner = trained(name)
    twin = LEARNERS[name](seed=0)
    twin.restore(orjson.loads(orjson.dumps(learner.snapshot())))
    assert twin.version == learner.version
    assert predictions(twin) == predictions(learner)
    assert dumped(twin) == dumped(learner)
    more = stream(300, seed=1)
    feed(learner, more)
    feed(twin, more)
    assert predictions(twin) == predictions(learner)
    assert dumped(twin) == dumped(learner)
    assert (twin.drift.alarms, twin.drift.last_alarm_ts_ms) == (learner.drift.alarms, learner.drift.last_alarm_ts_ms)


def test_restore_refuses_a_foreign_snapshot(name):
    learner = trained(name, n=60)
    with pytest.raises(ValueError):
        LEARNERS[name](seed=1).restore(learner.snapshot())  # other hyperparameters
    other = next(n for n in sorted(LEARNERS) if n != name)
    with pytest.raises(ValueError):
        LEARNERS[other](seed=0).restore(learner.snapshot())


def test_clones_are_independent(name):
    learner = trained(name)
    before, preds = dumped(learner), predictions(learner)
    clone = copy.deepcopy(learner)
    feed(clone, stream(200, seed=2))
    assert dumped(learner) == before and predictions(learner) == preds
    assert clone.version != learner.version


def test_snapshot_size_stays_bounded(name):
    learner = LEARNERS[name](seed=0)
    examples = stream(2000)
    feed(learner, examples[:200])
    small = len(dumped(learner))
    feed(learner, examples[200:])
    assert len(dumped(learner)) < 2 * small


def test_drift_monitor_sees_the_learning_stream(name):
    learner = trained(name, n=300)
    assert 0 < learner.drift.n <= 300
    assert 0.0 <= learner.drift.error <= 1.0


def test_examples_not_watched_are_learned_but_kept_from_the_drift_monitor(name):
    watched, unwatched = trained(name, n=300), LEARNERS[name](seed=0)
    for x, y, w, ts in stream(300):
        unwatched.learn_one(x, y, weight=w, ts_ms=ts, watch=False)
    assert unwatched.version == watched.version and predictions(unwatched) == predictions(watched)
    assert unwatched.drift.n == 0 < watched.drift.n


_REPLAY = """
from tests.conformance.test_learners import feed, predictions, stream
from models.learners.factory import make_learners
for name, learner in sorted(make_learners(seed=5).items()):
    feed(learner, stream(300))
    print(name, learner.version, [p.hex() for p in predictions(learner)])
"""


def test_replay_is_identical_across_processes():
    """Replays run in other processes, where str hashes (so set orders) differ: results must not."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", _REPLAY], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == len(LEARNERS)
