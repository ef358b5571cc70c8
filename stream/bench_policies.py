"""``make bench-policies``: what each bandit policy earns on the simulated shop, and what a decision costs.

**Profit, closed loop.** For each scenario (``stationary`` and ``abrupt`` by default), the simulator's shoppers
meet the processing core in process (``stream.simulator.closed_loop_run``): every decision point is answered by
the policy, shoppers respond to the offer shown, purchases become rewards (margin × revenue − the offer's cost)
that the policy learns from. Each policy runs on the same shoppers and seed for ``--days`` days (default 60), in
``--jobs`` processes (default: one per core; each run is deterministic, so the figures do not depend on it). The
simulator knows every offer's expected reward at every decision point, so for each run this reports

* ``chosen``: the expected profit of the offers the policy chose (no purchase noise), and as a fraction of the
  oracle's (the best offer at every decision, knowing the shopper's latent traits);
* ``best_fixed``: the best single offer shown at *the same* decision points (the simulator's expectation for
  each offer, summed; ``fixed_profit`` has every offer's), and the fixed-offer policy itself run closed loop;
* ``realised``: the rewards the worker actually attributed (with purchase noise), and the share of
  ``discount_15`` (the biggest discount) among decisions in the last third of the run.

**Cost per decision.** Decision contexts logged by a short replay (the worker's own features and scores, 5
offers, the default context of ``len(DEFAULT_CONTEXT)`` terms) go through each policy's ``choose`` (with a
per-decision seeded generator, as in the worker) and ``update``; beside them the River learners' cost per
decision (predict and learn of the intent, price-sensitivity and segment learners). Median µs over the
contexts, one process, wall clock (``time.perf_counter_ns``).

Printed, and written to ``.run/bench/policies.json``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bandits.context import DEFAULT_CONTEXT
from bandits.registry import make_policy
from models.features import user_vector
from models.learners.registry import make_learners
from stream.bench_machine import machine, write_results
from stream.records import OutputKind, SourceRecord
from stream.replay import build_processor, decider
from stream.settings import Settings, load_settings
from stream.simulator import Simulation, closed_loop_run

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("linear_thompson", "linucb", "thompson")


def shop_settings(seed: int, policy: str, **knobs: Any) -> Settings:
    return load_settings(overrides={"seed": seed, "policy": {"name": policy, **knobs}}, env={})


def closed_loop(scenario: str, days: float, users: int, seed: int, policy: str, **knobs: Any) -> dict[str, Any]:
    """One closed-loop run of ``policy``: expected and realised profit, the oracle's, the best fixed offer's."""
    core = build_processor(shop_settings(seed, policy, **knobs))
    sim = Simulation(scenario, days=days, users=users, seed=seed, closed_loop=True)
    shown: list[str] = []
    decide = decider(core)

    def record(event: dict[str, Any]) -> tuple[str, str] | None:
        answer = decide(event)
        if answer is not None:
            shown.append(answer[0])
        return answer

    started = time.perf_counter()
    loop = closed_loop_run(sim, record)["loop"]
    fixed = loop["fixed_profit"]
    best = max(fixed, key=lambda o: fixed[o])
    late = shown[2 * len(shown) // 3 :]
    realised = sum(v for k, v in core.counters.items() if k.startswith("reward_cents.")) / 100
    return {
        "policy": policy if policy != "fixed" else f"fixed:{knobs['fixed_offer']}",
        "decisions": loop["decided"],
        "chosen_profit": loop["chosen_profit"],
        "oracle_profit": loop["oracle_profit"],
        "oracle_fraction": round(loop["chosen_profit"] / loop["oracle_profit"], 4),
        "best_fixed_offer": best,
        "best_fixed_profit": fixed[best],
        "vs_best_fixed": round(loop["chosen_profit"] / fixed[best], 4),
        "fixed_profit": fixed,
        "realised_reward": round(realised, 2),
        "chosen": loop["chosen"],
        "late_discount_15_share": round(late.count("discount_15") / max(1, len(late)), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def logged_contexts(seed: int, users: int = 3000, days: float = 3.0) -> list[dict[str, Any]]:
    """The contexts the worker gave its policy in a short closed-loop run (features, scores, values at stake)."""
    core = build_processor(shop_settings(seed, "uniform"))
    sim = Simulation("stationary", days=days, users=users, seed=seed, closed_loop=True)
    contexts: list[dict[str, Any]] = []
    offsets = itertools.count()

    def decide(event: dict[str, Any]) -> tuple[str, str] | None:
        record = SourceRecord(orjson.dumps(event), "simulator", 0, next(offsets))
        for out in core.process(record):
            if out.kind is OutputKind.DECISION:
                contexts.append(out.body["features"] | out.body["scores"])
                return out.body["offer"], out.body["decision_id"]
        return None

    closed_loop_run(sim, decide)
    return contexts


def _median_us(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        times.append(time.perf_counter_ns() - t)
    return round(statistics.median(times) / 1000, 1)


def _policy_cost(
    name: str, contexts: Sequence[Mapping[str, Any]], offers: list[str], rewards: np.ndarray, seed: int
) -> dict[str, float]:
    policy = make_policy(shop_settings(seed, name).policy)
    for i, c in enumerate(contexts[: len(contexts) // 2]):  # a posterior that has seen data
        policy.update(c, offers[i % len(offers)], float(rewards[i]), 0.2)

    def choose(i: int) -> None:
        policy.choose(contexts[i], offers, np.random.default_rng([seed, i]))

    def update(i: int) -> None:
        policy.update(contexts[i], offers[i % len(offers)], float(rewards[i]), 0.2)

    return {"choose_us": _median_us(choose, len(contexts)), "update_us": _median_us(update, len(contexts))}


def decision_cost(contexts: Sequence[Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Median µs of each policy's choose and update, and of the learners' work per decision."""
    offers = list(load_settings(env={}).processing.offers.names)
    out: dict[str, Any] = {"contexts": len(contexts), "offers": len(offers), "context_terms": len(DEFAULT_CONTEXT)}
    rewards = np.random.default_rng(seed).exponential(5.0, len(contexts)) * (
        np.random.default_rng(seed + 1).random(len(contexts)) < 0.3
    )
    for name in POLICIES:
        out[name] = _policy_cost(name, contexts, offers, rewards, seed)
    learners = make_learners(seed)
    intent, price, segments = learners["intent"], learners["price_sensitivity"], learners["segments"]

    def intent_step(i: int) -> None:
        intent.predict_one(contexts[i])
        intent.learn_one(contexts[i], i % 3 == 0, ts_ms=i)

    def price_step(i: int) -> None:
        price.predict_one(contexts[i])
        price.learn_one(contexts[i], i % 3 == 0, ts_ms=i)

    def segments_step(i: int) -> None:
        segments.predict_one(user_vector(contexts[i]))
        segments.learn_one(user_vector(contexts[i]), None, ts_ms=i)

    n = len(contexts)
    out["river_learners"] = {
        "intent_us": _median_us(intent_step, n),
        "price_sensitivity_us": _median_us(price_step, n),
        "segments_us": _median_us(segments_step, n),
    }
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="stationary,abrupt")
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="closed-loop runs in parallel")
    parser.add_argument("--out", type=Path, default=REPO / ".run" / "bench" / "policies.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    result: dict[str, Any] = {"machine": machine(), "days": args.days, "users": args.users, "seed": args.seed}
    print(f"== cost per decision ({machine()['cpu']}, {machine()['cores']} cores)")
    cost = decision_cost(logged_contexts(args.seed), args.seed)
    result["cost"] = cost
    for name in POLICIES:
        print(f"  {name:16s} choose {cost[name]['choose_us']:8.1f} µs   update {cost[name]['update_us']:8.1f} µs")
    for name, us in cost["river_learners"].items():
        print(f"  river {name:22s} {us:8.1f} µs (predict + learn)")
    result["closed_loop"] = {}
    scenarios = args.scenarios.split(",")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = {
            (scenario, p): pool.submit(closed_loop, scenario, args.days, args.users, args.seed, p)
            for scenario in scenarios
            for p in POLICIES
        }
        by_scenario = {scenario: [runs[scenario, p].result() for p in POLICIES] for scenario in scenarios}
        fixed = {
            scenario: pool.submit(
                closed_loop, scenario, args.days, args.users, args.seed, "fixed",
                fixed_offer=by_scenario[scenario][0]["best_fixed_offer"],
            )
            for scenario in scenarios
        }  # fmt: skip
        for scenario in scenarios:
            by_scenario[scenario].append(fixed[scenario].result())
    for scenario in scenarios:
        print(f"== closed loop: {scenario}, {args.days:g} days, {args.users} shoppers, seed {args.seed}")
        for r in by_scenario[scenario]:
            print(
                f"  {r['policy']:22s} decisions {r['decisions']:6d}  expected profit {r['chosen_profit']:10.0f}"
                f"  = {100 * r['oracle_fraction']:5.1f}% of oracle  {r['vs_best_fixed']:.3f}× best fixed"
                f" ({r['best_fixed_offer']})  realised {r['realised_reward']:10.0f}"
                f"  late discount_15 {100 * r['late_discount_15_share']:4.1f}%  ({r['seconds']:.0f} s)"
            )
        result["closed_loop"][scenario] = by_scenario[scenario]
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
