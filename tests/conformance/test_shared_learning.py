"""The shared checks for every learner a fleet shares (:mod:`stream.core.lessons`): each policy registered in
bandits.factory, each learner in models.learners.factory, and the order-value model join automatically.

Exact where the statistics are additive: a learner that learned the first half of a stream and folded a lesson
of the second half (taken by another learner that saw only that half, meeting the offers in another order)
holds what one learner of the whole stream holds, forgetting included. Where they are not (SGD weights, k-means
centres) two learners that share lessons every few examples are measured against one learner of everything.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from bandits.factory import POLICIES
from bandits.order_value import OrderValueModel
from bandits.settings import PolicySettings
from models.learners.factory import LEARNERS, make_learners
from stream.core.lessons import LessonMismatch, Shareable
from tests.conformance.test_learners import probes
from tests.conformance.test_learners import stream as learner_stream
from tests.conformance.test_policies import OFFERS, shop_context

HALF_LIFE = 60  # short, so that forgetting weighs on every check


@dataclass
class Subject:
    """A shareable learner: how to build one, teach it an example, and read what must merge exactly."""

    build: Callable[[], Shareable]
    teach: Callable[[Any, Any], None]
    examples: Callable[[int], list[Any]]
    exact: Callable[[Any], list[np.ndarray]]  # the statistics that merge exactly


def policy_examples(n: int, first_offer: str = "none", seed: int = 0) -> list[tuple[dict, str, float, bool]]:
    rng = random.Random(seed)
    order = [first_offer] + [o for o in OFFERS if o != first_offer]
    out = []
    for i in range(n):
        offer = order[i] if i < len(order) else rng.choice(OFFERS)
        context = shop_context(rng.uniform(5.0, 200.0), segment=float(rng.randrange(4)), adds=float(rng.randrange(4)))
        bought = rng.random() < 0.1 + 0.1 * context["adds"] + (0.2 if offer == "free_shipping" else 0.0)
        out.append((context, offer, context[f"margin_value:{offer}"] if bought else 0.0, bought))
    return out


def policy_subject(name: str) -> Subject:
    def build() -> Shareable:
        settings = PolicySettings(name=name, mc_samples=200, fixed_offer="discount_5", forget_half_life=HALF_LIFE)
        return POLICIES[name](settings)

    def teach(policy: Any, example: tuple[dict, str, float, bool]) -> None:
        context, offer, reward, bought = example
        policy.update(context, offer, reward, 0.2, converted=bought)

    def exact(policy: Any) -> list[np.ndarray]:
        if hasattr(policy, "_posterior") and hasattr(policy._posterior, "settled"):
            precision, xr, rr, n = policy._posterior.settled()
            # columns in the order of the offers' names, whatever order the learner met them in
            names = sorted(policy._blocks)
            keep = list(range(policy._base.dim + policy._shared))
            per = 1 if policy.lift_by else policy._lift.dim
            for o in names:
                start = policy._base.dim + policy._shared + policy._blocks[o] * per
                keep.extend(range(start, start + per))
            out = [precision[np.ix_(keep, keep)], xr[keep], np.array([rr, n, policy._rewards])]
            if hasattr(policy, "_budget"):  # conservative mode's budget: a sum over the rewards, like xr
                out.append(policy._budget.vector(policy._posterior.dim)[keep])
            return out
        state = policy.snapshot()
        return [np.array(sorted(_numbers(state)))]

    return Subject(build, teach, policy_examples, exact)


def _numbers(state: Any) -> Iterator[float]:
    if isinstance(state, dict):
        for value in state.values():
            yield from _numbers(value)
    elif isinstance(state, list):
        for value in state:
            yield from _numbers(value)
    elif isinstance(state, (int, float)) and not isinstance(state, bool):
        yield float(state)


def order_examples(n: int, first_offer: str = "none", seed: int = 0) -> list[tuple[str, float, float]]:
    rng = random.Random(seed + 1)
    order = [first_offer] + [o for o in OFFERS if o != first_offer]
    out = []
    for i in range(n):
        offer = order[i] if i < len(order) else rng.choice(OFFERS)
        cart = rng.uniform(5.0, 300.0)
        out.append((offer, cart, cart * (1.3 if offer == "free_shipping" else 1.05) + rng.uniform(0.0, 20.0)))
    return out


def order_subject() -> Subject:
    def exact(model: Any) -> list[np.ndarray]:
        fits = [model._pooled] + [model._per[o] for o in sorted(model._per)]
        return [np.concatenate([a.ravel(), b]) for a, b in fits] + [np.array([model.purchases])]

    return Subject(
        lambda: OrderValueModel(half_life=HALF_LIFE, min_purchases=5),
        lambda model, e: model.learn(*e),
        order_examples,
        exact,
    )


def learner_subject(name: str) -> Subject:
    def exact(learner: Any) -> list[np.ndarray]:
        scaler = learner._scaler
        keys = sorted(scaler.counts)
        out = [np.array([[scaler.counts[k], scaler.means[k], scaler.vars[k]] for k in keys]), np.array([learner._n])]
        if hasattr(learner, "_mean_weight"):
            out.append(np.array([learner._mean_weight.n, learner._mean_weight.get()]))
        return out

    return Subject(
        lambda: make_learners(0)[name],
        lambda learner, e: learner.learn_one(e[0], e[1], weight=e[2], ts_ms=e[3]),
        lambda n, first_offer="none", seed=0: learner_stream(n, seed),
        exact,
    )


SUBJECTS: dict[str, Subject] = {
    **{f"policy:{name}": policy_subject(name) for name in sorted(POLICIES)},
    "order_values": order_subject(),
    **{f"learner:{name}": learner_subject(name) for name in sorted(LEARNERS)},
}
LEARNS = [name for name in SUBJECTS if name not in ("policy:uniform", "policy:fixed")]


def wire(lesson: dict[str, Any] | None) -> dict[str, Any]:
    """A lesson as another worker receives it: through JSON (no numpy, no pickles survive)."""
    assert lesson is not None
    return orjson.loads(orjson.dumps(lesson))


@pytest.fixture(params=sorted(SUBJECTS))
def subject(request) -> Subject:
    return SUBJECTS[request.param]


@pytest.fixture(params=LEARNS)
def learning(request) -> Subject:
    return SUBJECTS[request.param]


def test_follows_the_shareable_protocol(subject):
    assert isinstance(subject.build(), Shareable)


def test_nothing_learned_is_no_lesson(subject):
    learner = subject.build()
    assert learner.lesson() is None
    assert learner.whole_lesson() is None
    for e in subject.examples(30):
        subject.teach(learner, e)
    learner.lesson()
    assert learner.lesson() is None  # taking a lesson starts the next, empty one


def test_two_halves_merged_equal_the_whole(learning):
    """Exact: forgetting included, with the second half's learner meeting the offers in another order."""
    examples = learning.examples(400)
    second = learning.examples(200, first_offer="discount_15", seed=7)
    whole, first_half, second_half = learning.build(), learning.build(), learning.build()
    for e in examples[:200] + second[:200]:
        learning.teach(whole, e)
    for e in examples[:200]:
        learning.teach(first_half, e)
    for e in second[:200]:
        learning.teach(second_half, e)
    first_half.lesson()  # what it learned itself is not what is compared; the fold is
    first_half.fold(wire(second_half.lesson()))
    for merged, one in zip(learning.exact(first_half), learning.exact(whole), strict=True):
        np.testing.assert_allclose(merged, one, rtol=1e-9, atol=1e-9)


def test_a_learner_that_knows_nothing_folds_a_whole_lesson_into_the_same_learner(learning):
    """How a new worker starts from the fleet's model: exact for every learner, SGD weights and centres too."""
    teacher = learning.build()
    for i, e in enumerate(learning.examples(300)):
        learning.teach(teacher, e)
        if i % 70 == 0:
            teacher.lesson()  # lessons taken along the way change nothing of the whole
    fresh = learning.build()
    fresh.fold(wire(teacher.whole_lesson()))
    for x, y in zip(learning.exact(fresh), learning.exact(teacher), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
    if hasattr(teacher, "predict_one"):
        for x in probes(50):
            assert fresh.predict_one(x) == pytest.approx(teacher.predict_one(x), rel=1e-9, abs=1e-12)
    assert fresh.lesson() is None  # what it folded in is nobody's new lesson


def test_a_lesson_never_holds_what_was_folded_in(learning):
    examples = learning.examples(300)
    a, b, c = learning.build(), learning.build(), learning.build()
    for e in examples[:100]:
        learning.teach(b, e)
    a.fold(wire(b.lesson()))
    assert a.lesson() is None
    for e in examples[100:]:
        learning.teach(a, e)
        learning.teach(c, e)
    from_a, from_c = learning.build(), learning.build()
    from_a.fold(wire(a.lesson()))
    from_c.fold(wire(c.lesson()))
    for x, y in zip(learning.exact(from_a), learning.exact(from_c), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)


# the order-value model is one of a kind in a worker: the processor checks that it runs one
@pytest.mark.parametrize("name", [s for s in LEARNS if s != "order_values"])
def test_a_lesson_of_another_kind_is_refused(name):
    others = [s for s in LEARNS if s not in (name, "order_values")]
    other, learning = SUBJECTS[others[0]], SUBJECTS[name]
    teacher = other.build()
    for e in other.examples(30):
        other.teach(teacher, e)
    learner = learning.build()
    with pytest.raises(LessonMismatch):
        learner.fold(wire(teacher.lesson()))


# -- approximate merges, measured ----------------------------------------------------------------------------


def _shared_pair(name: str, n: int, every: int) -> tuple[Any, Any, Any]:
    """(worker A, worker B, one learner of everything): A and B each learn alternate examples and swap lessons
    every ``every`` examples."""
    examples = learner_stream(n, seed=3)
    a, b, whole = (make_learners(0)[name] for _ in range(3))
    for i, e in enumerate(examples):
        learner = a if i % 2 == 0 else b
        learner.learn_one(e[0], e[1], weight=e[2], ts_ms=e[3])
        whole.learn_one(e[0], e[1], weight=e[2], ts_ms=e[3])
        if (i + 1) % every == 0:
            from_a, from_b = a.lesson(), b.lesson()
            if from_b:
                a.fold(wire(from_b))
            if from_a:
                b.fold(wire(from_a))
    return a, b, whole


@pytest.mark.parametrize("name", ["intent", "price_sensitivity"])
def test_shared_sgd_learners_predict_like_one_learner_of_everything(name):
    a, b, whole = _shared_pair(name, 6000, every=50)
    alone = make_learners(0)[name]
    for i, e in enumerate(learner_stream(6000, seed=3)):
        if i % 2 == 0:
            alone.learn_one(e[0], e[1], weight=e[2], ts_ms=e[3])
    xs = probes(200)
    truth = np.array([whole.predict_one(x) for x in xs])
    shared = np.array([a.predict_one(x) for x in xs])
    apart = np.array([alone.predict_one(x) for x in xs])
    gap_shared, gap_alone = np.abs(shared - truth).mean(), np.abs(apart - truth).mean()
    print(f"{name}: mean |prediction − one learner's| shared {gap_shared:.4f}, learning half alone {gap_alone:.4f}")
    assert gap_shared < 0.5 * gap_alone
    np.testing.assert_allclose([a.predict_one(x) for x in xs], [b.predict_one(x) for x in xs], atol=0.02)


def test_shared_segments_mean_the_same_on_every_worker():
    a, b, whole = _shared_pair("segments", 4000, every=50)
    assert a._basis == b._basis is not None
    xs = probes(300)
    same = np.mean([a.predict_one(x) == b.predict_one(x) for x in xs])
    # against the one learner: its ids come from its own seeding, so compare under the best relabelling
    ours = [int(a.predict_one(x)) for x in xs]
    theirs = [int(whole.predict_one(x)) for x in xs]
    k = a.n_clusters
    counts = np.zeros((k, k))
    for i, j in zip(ours, theirs, strict=True):
        counts[i, j] += 1
    agree = max(sum(counts[i, p[i]] for i in range(k)) for p in _permutations(k)) / len(xs)
    print(f"segments: same id on both workers {same:.3f}; agreement with one learner (best relabelling) {agree:.3f}")
    assert same >= 0.95
    assert agree >= 0.6


def _permutations(k: int) -> Iterator[tuple[int, ...]]:
    return itertools.permutations(range(k))


def test_two_workers_that_seed_segments_at_once_agree_on_one_seeding():
    a, b = make_learners(0)["segments"], make_learners(1)["segments"]
    examples = learner_stream(200, seed=5)
    for i, e in enumerate(examples[:120]):  # both past their warm-up, each seeded on its own
        (a if i % 2 == 0 else b).learn_one(e[0], None)
    assert a._basis != b._basis
    from_a, from_b = wire(a.lesson()), wire(b.lesson())
    a.fold(from_b)
    b.fold(from_a)
    assert a._basis == b._basis
    for x in probes(50):
        assert a.predict_one(x) == b.predict_one(x)
    assert math.isfinite(a.predict_one(probes(1)[0]))
