"""The segment learner separates well-separated groups of shoppers, on features of very different scales."""

from __future__ import annotations

import collections
import random

import pytest

from models.learners.segments import SegmentLearner

SCALES = {"cart_value": 100.0, "product_views": 3.0, "session_minutes": 5.0, "mobile": 0.2, "user_purchases": 1.0}


def blobs(seed: int, k: int = 4):
    """A draw() of (blob, behaviour vector): k blobs whose centres lie ≥ 8 standard deviations apart."""
    rng = random.Random(seed)
    while True:
        centres = [{f: rng.uniform(-10.0, 10.0) for f in SCALES} for _ in range(k)]
        gaps = [sum((a[f] - b[f]) ** 2 for f in SCALES) ** 0.5 for i, a in enumerate(centres) for b in centres[i + 1 :]]
        if min(gaps, default=8.0) >= 8.0:
            break

    def draw() -> tuple[int, dict[str, float]]:
        blob = rng.randrange(k)
        return blob, {f: (centres[blob][f] + rng.gauss(0.0, 1.0)) * s for f, s in SCALES.items()}

    return draw


def purity(model: SegmentLearner, draw, n: int = 2_000) -> float:
    table: dict[float, collections.Counter] = collections.defaultdict(collections.Counter)
    for _ in range(n):
        blob, x = draw()
        table[model.predict_one(x)][blob] += 1
    return sum(c.most_common(1)[0][1] for c in table.values()) / n


@pytest.mark.parametrize("seed", range(4))
def test_separates_well_separated_blobs(seed):
    draw = blobs(seed)
    model = SegmentLearner(seed=seed)
    for _ in range(3_000):
        model.learn_one(draw()[1], None)
    assert purity(model, draw) > 0.9
    assert {model.predict_one(draw()[1]) for _ in range(500)} == {0.0, 1.0, 2.0, 3.0}  # every segment in use


def test_everyone_is_in_segment_zero_until_the_centres_are_seeded():
    draw = blobs(0)
    model = SegmentLearner(seed=0, warmup=50)
    for _ in range(49):
        model.learn_one(draw()[1], None)
    assert {model.predict_one(draw()[1]) for _ in range(50)} == {0.0}
    assert model.drift.n == 0
    model.learn_one(draw()[1], None)
    assert len({model.predict_one(draw()[1]) for _ in range(200)}) > 1
    assert len(model.centers()) == 4


def test_labels_and_weights_are_ignored():
    draw = blobs(1)
    xs = [draw()[1] for _ in range(300)]
    a, b = SegmentLearner(seed=0), SegmentLearner(seed=0)
    for x in xs:
        a.learn_one(x, None)
        b.learn_one(x, True, weight=7.0)
    assert a.snapshot() == b.snapshot()


def test_drift_alarm_when_shoppers_stop_looking_like_any_segment():
    draw = blobs(2)
    model = SegmentLearner(seed=0)
    for i in range(5_000):
        model.learn_one(draw()[1], None, ts_ms=i)
    assert model.drift.alarms == 0
    newcomers = blobs(99, k=1)
    for i in range(5_000, 5_400):
        _, x = newcomers()
        model.learn_one({f: v + 30.0 * SCALES[f] for f, v in x.items()}, None, ts_ms=i)  # far from every centre
    assert model.drift.alarms >= 1 and 5_000 <= (model.drift.last_alarm_ts_ms or 0) < 5_400


def test_warmup_must_cover_the_clusters():
    with pytest.raises(ValueError):
        SegmentLearner(n_clusters=8, warmup=4)
