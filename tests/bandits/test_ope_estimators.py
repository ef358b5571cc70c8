"""Off-policy estimators against logged bandit problems whose true target value is known analytically."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bandits.errors import OpeError
from bandits.ope import estimators as est
from bandits.ope.evaluate import evaluate
from bandits.ope.logged_rounds import LoggedRounds
from bandits.settings import PolicySettings

ACTIONS = ("a", "b", "c")
BASE = np.array([1.0, 2.0, 1.5])
# reward of action k = BASE[k] + COEF[k] · (x1, x2, x3) + noise; x1, x2 ~ Bernoulli(1/2), x3 ~ N(0, 1)
COEF = np.array([[2.0, 0.0, 1.0], [-1.0, 1.0, 0.0], [0.0, 3.0, -1.0]])
LOGGING = np.array([[1.5, -1.0, 0.5], [0.0, 1.0, 0.0], [-1.0, 0.0, -0.5]])  # softmax scores of the logger
TRUTH = {a: float(BASE[k] + COEF[k] @ np.array([0.5, 0.5, 0.0])) for k, a in enumerate(ACTIONS)}


def logged_problem(n: int, seed: int, uniform: bool = False, noise: float = 1.0) -> LoggedRounds:
    """Contexts, a known logging policy (softmax of LOGGING·x, or uniform) and linear rewards with noise."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 2, n), rng.normal(size=n)]).astype(float)
    if uniform:
        probs = np.full((n, len(ACTIONS)), 1.0 / len(ACTIONS))
    else:
        scores = x @ LOGGING.T
        probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    a = np.array([rng.choice(len(ACTIONS), p=p) for p in probs])
    rewards = BASE[a] + np.einsum("nd,nd->n", COEF[a], x) + noise * rng.normal(size=n)
    contexts = [{"x1": r[0], "x2": r[1], "x3": r[2]} for r in x.tolist()]
    return LoggedRounds(
        contexts, [ACTIONS] * n, [ACTIONS[k] for k in a], probs[np.arange(n), a], rewards, source=f"synthetic:{seed}"
    )


@pytest.fixture(scope="module")
def problem() -> LoggedRounds:
    return logged_problem(6000, seed=1)


@pytest.fixture(scope="module")
def result(problem: LoggedRounds) -> dict:
    return evaluate(problem, "offer:b", estimators=("ipw", "snipw", "dr"), seed=3, resamples=500)


def test_truth_is_not_the_logged_value(problem, result):
    # The target differs from the logger, so an estimator that ignored the weights would miss.
    assert abs(result["on_policy_value"] - TRUTH["b"]) > 0.2


@pytest.mark.parametrize("name", ["ipw", "snipw", "dr"])
def test_estimates_land_near_the_truth(result, name):
    e = result["estimates"][name]
    assert abs(e["value"] - TRUTH["b"]) < 4 * e["se"], (name, e, TRUTH["b"])
    assert e["ci"][0] <= e["value"] <= e["ci"][1]


def test_dr_is_tighter_than_ipw(result):
    width = {k: v["ci"][1] - v["ci"][0] for k, v in result["estimates"].items()}
    assert width["dr"] < 0.8 * width["ipw"], width


def test_ipw_matches_its_definition(problem, result):
    w = np.array([1.0 if a == "b" else 0.0 for a in problem.actions]) / problem.propensities
    assert result["estimates"]["ipw"]["value"] == pytest.approx(float(np.mean(w * problem.rewards)), abs=1e-12)
    assert result["estimates"]["snipw"]["value"] == pytest.approx(
        float(np.sum(w * problem.rewards) / np.sum(w)), abs=1e-12
    )


def test_replay_of_uniform_logs_recovers_a_fixed_offer():
    rounds = logged_problem(6000, seed=2, uniform=True)
    out = evaluate(rounds, "offer:c", estimators=("replay",), seed=0, resamples=500)
    e = out["estimates"]["replay"]
    assert out["replay_matches"] == sum(a == "c" for a in rounds.actions)
    assert abs(e["value"] - TRUTH["c"]) < 4 * e["se"], (e, TRUTH["c"])
    assert not out["notes"]


def test_replay_warns_on_non_uniform_logs(problem):
    out = evaluate(problem, "uniform", estimators=("replay",), resamples=0)
    assert any("uniformly random" in n for n in out["notes"])


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    covered = {"ipw": 0, "dr": 0}
    trials = 30
    for seed in range(trials):
        out = evaluate(logged_problem(800, seed=100 + seed), "offer:a", estimators=("ipw", "dr"), seed=seed,
                       resamples=300)  # fmt: skip
        for name in covered:
            lo, hi = out["estimates"][name]["ci"]
            covered[name] += lo <= TRUTH["a"] <= hi
    # Binomial(30, 0.95): 24 or fewer happens with probability < 0.2 %.
    assert all(c >= 25 for c in covered.values()), covered


def test_same_seed_same_output_other_seed_other_interval(problem):
    small = LoggedRounds(
        problem.contexts[:1500], problem.eligible[:1500], problem.actions[:1500],
        problem.propensities[:1500], problem.rewards[:1500],
    )  # fmt: skip
    first = evaluate(small, "thompson", seed=5, resamples=200)
    assert evaluate(small, "thompson", seed=5, resamples=200) == first
    other = evaluate(small, "thompson", seed=6, resamples=200)
    assert other["estimates"]["ipw"]["ci"] != first["estimates"]["ipw"]["ci"]


@pytest.mark.parametrize("target", ["thompson", "linear_thompson"])
def test_a_learning_target_is_scored_progressively(target):
    # Action c pays far more; a learning policy should move towards it, so its IPW value beats uniform's.
    rounds = logged_problem(1200, seed=4, uniform=True)
    rounds.rewards[np.array(rounds.actions) == "c"] += 5.0
    kw = {
        "estimators": ("ipw",),
        "resamples": 0,
        "context": ("x1", "x2", "x3"),
        "settings": PolicySettings(mc_samples=200),
    }
    uniform = evaluate(rounds, "uniform", **kw)["estimates"]["ipw"]["value"]
    learned = evaluate(rounds, target, **kw)["estimates"]["ipw"]["value"]
    assert learned > uniform + 2.0


def test_bootstrap_is_vectorised_and_fast():
    rng = np.random.default_rng(0)
    num, den = rng.random(10_000), rng.random(10_000) + 0.5
    started = time.perf_counter()
    reps = est.bootstrap(num, den, resamples=1000, seed=1)
    assert time.perf_counter() - started < 5.0
    assert reps.shape == (1000,) and np.isfinite(reps).all()
    assert reps.std() > 0 and abs(reps.mean() - num.sum() / den.sum()) < 0.01


def test_bootstrap_percentiles_match_a_plain_loop():
    num = np.random.default_rng(3).random(50)
    reps = est.bootstrap(num, resamples=300, seed=2, name="ipw")
    rng = np.random.default_rng([2, est._tag("ipw")])
    idx = rng.integers(0, 50, size=(300, 50))
    assert np.allclose(reps, [num[row].mean() for row in idx])


def test_unknown_estimator_and_target_are_refused(problem):
    with pytest.raises(OpeError, match="unknown estimator"):
        evaluate(problem, "uniform", estimators=("magic",))
    with pytest.raises(OpeError, match="unknown target"):
        evaluate(problem, "nobody", estimators=("ipw",))
