"""A target policy evaluated on logged rounds by every estimator asked for: the result ``offerstream ope`` prints.

The target's probabilities π(·|x_i) for IPW, SNIPW and DR come from **progressive validation**: the policy is
walked through the log in order; at round *i* it gives ``choose(x_i, eligible_i, default_rng([seed, i]))``'s
``propensities`` having learned from rounds before *i* only, then it learns from round *i*'s logged action,
reward and propensity (``update``). A learning policy is thus judged on every round by what it knew then, as it
would be online — though it learns from the logger's actions, not its own. ``uniform`` and ``offer:NAME`` learn
nothing, so their π is fixed. Replay (see :mod:`bandits.ope.estimators`) runs a fresh copy of the policy.

>>> from bandits.ope.logged_rounds import LoggedRounds
>>> rounds = LoggedRounds([{}] * 4, [("a", "b")] * 4, ["a", "b", "a", "b"], np.full(4, 0.5),
...                       np.array([1.0, 0.0, 1.0, 0.0]))
>>> out = evaluate(rounds, "offer:a", estimators=("ipw", "replay"), resamples=0)
>>> out["estimates"]["ipw"]["value"], out["estimates"]["replay"]["value"], out["replay_matches"]
(1.0, 1.0, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bandits.base import Policy
from bandits.baselines import FixedOfferPolicy
from bandits.errors import OpeError
from bandits.factory import POLICIES
from bandits.ope import estimators as est
from bandits.ope.logged_rounds import LoggedRounds
from bandits.ope.reward_model import cross_fitted_q
from bandits.settings import PolicySettings

ESTIMATORS = ("ipw", "snipw", "dr", "replay")


def target_factory(
    target: str, settings: PolicySettings | None = None, context: Sequence[str] | None = None
) -> Callable[[], Policy]:
    """Builds fresh copies of the target: ``offer:NAME``, or a policy of the registry from ``settings``.

    ``context`` replaces the settings' context keys when given: the OBD one-hot keys, which no configured
    feature list can name. Such a context carries no per-offer value at stake and none of the shop's lift
    terms, so the linear policies then model the reward itself (``value_key=None``) with one intercept per
    action (``lift_context=()``) and a flat prior.
    """
    if target.startswith("offer:"):
        offer = target.removeprefix("offer:")
        if not offer:
            raise OpeError("offer:NAME needs a name")
        return lambda: FixedOfferPolicy(offer)
    if target not in POLICIES:
        raise OpeError(f"unknown target {target!r}: give offer:NAME or one of {', '.join(sorted(POLICIES))}")
    update: dict[str, Any] = {"name": target}
    if context is not None:
        update |= {
            "context": tuple(context),
            "lift_context": (),
            "lift_by": (),
            "value_key": None,
            "target": "profit",
            "prior_coefficients": {},
        }
    policy_settings = (settings or PolicySettings()).model_copy(update=update)
    return lambda: POLICIES[target](policy_settings)


def action_index(rounds: LoggedRounds) -> dict[str, int]:
    """Column of every action, eligible or logged, in first-seen order."""
    return {a: j for j, a in enumerate(dict.fromkeys(rounds.action_set + tuple(rounds.actions)))}


def target_probabilities(rounds: LoggedRounds, policy: Policy, index: dict[str, int], seed: int = 0) -> np.ndarray:
    """π(a|x_i) by progressive validation (module docstring), as an ``n × len(index)`` matrix."""
    pi = np.zeros((len(rounds), len(index)))
    for i, (context, offers, action) in enumerate(zip(rounds.contexts, rounds.eligible, rounds.actions, strict=True)):
        choice = policy.choose(context, offers, np.random.default_rng([seed, i]))
        for offer, p in choice.propensities.items():
            pi[i, index[offer]] = p
        policy.update(context, action, float(rounds.rewards[i]), float(rounds.propensities[i]))
    return pi


def evaluate(
    rounds: LoggedRounds,
    target: str,
    settings: PolicySettings | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    seed: int = 0,
    resamples: int = 1000,
    level: float = 0.95,
    folds: int = 2,
    context: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every estimator in ``estimators`` for ``target`` on ``rounds``; JSON-able (NaN where undefined)."""
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise OpeError(f"unknown estimator(s) {', '.join(unknown)}: choose from {', '.join(ESTIMATORS)}")
    if not len(rounds):
        raise OpeError("no rounds to evaluate")
    build = target_factory(target, settings, context)
    r, p = rounds.rewards, rounds.propensities
    notes: list[str] = []
    out: dict[str, Any] = {"target": target, "n": len(rounds), "estimates": {}}
    on_policy = est.ipw(r, np.ones(len(r)), resamples, seed, level)  # weights 1: the logged mean reward
    out["on_policy_value"] = on_policy.value
    out["on_policy"] = on_policy.as_dict()
    if any(e != "replay" for e in estimators):
        index = action_index(rounds)
        a = np.array([index[x] for x in rounds.actions])
        pi = target_probabilities(rounds, build(), index, seed)
        w = pi[np.arange(len(a)), a] / p
        out["max_weight"] = float(w.max())
        out["matched_support"] = int((w > 0).sum())
        if "ipw" in estimators:
            out["estimates"]["ipw"] = est.ipw(r, w, resamples, seed, level).as_dict()
        if "snipw" in estimators:
            out["estimates"]["snipw"] = est.snipw(r, w, resamples, seed, level).as_dict()
        if "dr" in estimators:
            x = rounds.context_matrix(rounds.feature_names())
            q = cross_fitted_q(x, a, r, len(index), folds=folds, seed=seed)
            q_logged, q_target = q[np.arange(len(a)), a], (pi * q).sum(axis=1)
            out["estimates"]["dr"] = est.dr(r, w, q_logged, q_target, resamples, seed, level).as_dict()
            out["reward_model"] = {"kind": "per-action ridge, cross-fitted", "folds": folds, "features": x.shape[1]}
    if "replay" in estimators:
        estimate, matched = est.replay(rounds, build(), seed, resamples, level)
        matches = len(matched)
        out["estimates"]["replay"] = estimate.as_dict()
        out["replay_matches"] = matches
        out["replay_reward_sum"] = float(r[matched].sum())
        if not est.constant_propensities(p):
            notes.append(
                "replay is unbiased only for uniformly random logs; these logged propensities vary "
                f"({float(p.min()):.4g} to {float(p.max()):.4g})"
            )
        if matches == 0:
            notes.append("replay matched no round: its value is undefined")
    if len(rounds) < 50:
        notes.append(f"only {len(rounds)} rounds: every figure is very noisy")
    out.update(
        {
            "unresolved": rounds.unresolved,
            "skipped": dict(rounds.skipped),
            "seed": seed,
            "bootstrap": resamples,
            "ci_level": level,
            "notes": notes,
        }
    )
    return out
