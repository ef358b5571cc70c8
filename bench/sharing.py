"""``make bench-sharing``: how much sooner a fleet that shares its lessons decides well than workers that do not.

The policies bench (``make bench-policies``) compares whole closed-loop runs: one worker, several sharing one
shop's traffic, several apart. Over weeks every arm ends up knowing the shop, so what sharing buys (learning
from all the traffic, not a share of it) is a few percent of the total, inside the run-to-run noise of a closed
loop. This bench measures it where it is: **the value of what each worker has learned, day by day.**

For each arm (``one``: one core has all the traffic; ``sharing``: ``--workers`` cores, shoppers dealt by
partition, swapping lessons every ``--share-s`` seconds of event time, as over the model topic; ``apart``: the
same cores, no lessons), the simulator's shop runs closed loop for ``--days`` days (``--scenario``, ``--users``
shoppers, seeds ``--seeds``). At the end of each day in ``--at``, every core's learners (policy, order values,
River learners) are copied, as a worker starting from them would take them (``whole_lesson``, through JSON),
into a fresh core with **learning switched off**, and that frozen core answers a held-out day of the same shop
(other shoppers: seed ``--held-out-seed``, ``--held-out-users``), closed loop. The held-out day is the same for
every arm, core and day, and each decision's sampling is seeded by the event, so the arms differ only in what
their cores learned. Reported: the expected profit of the offers chosen on the held-out day (the simulator's
expectation, no purchase noise) as a fraction of the oracle's, averaged over an arm's cores, per seed and its
mean; and ``sharing − apart`` per seed.

Printed, and written to ``.run/bench/sharing.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.machine import machine, process_pool, write_results
from bench.policies import Fleet, shop_settings
from stream.app.build import build_processor
from stream.app.replay import decider
from stream.core.lessons import Lesson
from stream.engine.processor import Processor
from stream.simulator import Simulation, closed_loop_run

REPO = Path(__file__).resolve().parents[1]
DAY_MS = 86_400_000
ARMS = ("one", "sharing", "apart")


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def frozen(lesson: Lesson | None, seed: int, policy: str) -> Processor:
    """A fresh core holding what ``lesson`` (a core's ``whole_lesson``) teaches, that learns nothing more."""
    core = build_processor(shop_settings(seed, policy))
    if lesson is not None:
        core.fold(orjson.loads(orjson.dumps(lesson)))
    core.policy.update = _nothing  # type: ignore[method-assign]
    if core.order_values is not None:
        core.order_values.learn = _nothing  # type: ignore[method-assign]
    for learner in core.learners.values():
        learner.learn_one = _nothing  # type: ignore[method-assign]
    return core


def held_out_value(lesson: Lesson | None, seed: int, policy: str, scenario: str, users: int, held_seed: int) -> dict:
    """What a frozen core holding ``lesson`` earns on one held-out day: expected profit, oracle's, best fixed."""
    core = frozen(lesson, seed, policy)
    sim = Simulation(scenario, days=1.0, users=users, seed=held_seed, closed_loop=True)
    loop = closed_loop_run(sim, decider(core))["loop"]
    return {
        "decisions": loop["decided"],
        "chosen_profit": loop["chosen_profit"],
        "oracle_profit": loop["oracle_profit"],
        "best_fixed_profit": max(loop["fixed_profit"].values()),
    }


def train(arm: str, scenario: str, days: float, users: int, seed: int, policy: str, workers: int, share_s: float,
          at: Sequence[float]) -> dict[str, Any]:  # fmt: skip
    """One arm's closed-loop run; the whole lesson of each of its cores at the end of each day in ``at``."""
    settings = shop_settings(seed, policy)
    n = 1 if arm == "one" else workers
    cores = [build_processor(settings) for _ in range(n)]
    fleet = Fleet(cores, share_s if arm == "sharing" else None)
    sim = Simulation(scenario, days=days, users=users, seed=seed, closed_loop=True)
    marks = sorted(sim.start_ms + int(d * DAY_MS) for d in at)
    taken: dict[float, list[Lesson | None]] = {}

    def decide(event: dict[str, Any]) -> tuple[str, str] | None:
        while marks and int(event["ts"]) >= marks[0]:
            taken[(marks.pop(0) - sim.start_ms) / DAY_MS] = [core.whole_lesson() for core in cores]
        return fleet.decide(event)

    started = time.perf_counter()
    loop = closed_loop_run(sim, decide)["loop"]
    for mark in marks:  # days at or past the run's last event
        taken[(mark - sim.start_ms) / DAY_MS] = [core.whole_lesson() for core in cores]
    return {
        "arm": arm,
        "seed": seed,
        "lessons": taken,
        "lessons_swapped": fleet.lessons,
        "decisions": loop["decided"],
        "oracle_fraction": round(loop["chosen_profit"] / loop["oracle_profit"], 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="stationary")
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=8_000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--policy", default="linear_thompson")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--share-s", type=float, default=1.0, help="seconds of event time between lessons")
    parser.add_argument("--at", default="1,2,4,7,10", help="days after which the cores' learners are valued")
    parser.add_argument("--held-out-users", type=int, default=8_000)
    parser.add_argument("--held-out-seed", type=int, default=1_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=REPO / ".run" / "bench" / "sharing.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    seeds = [int(s) for s in args.seeds.split(",")]
    at = [float(d) for d in args.at.split(",")]
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    started = time.perf_counter()
    with process_pool(args.jobs) as pool:
        runs = {
            (arm, seed): pool.submit(
                train, arm, args.scenario, args.days, args.users, seed, args.policy, args.workers, args.share_s, at
            )
            for seed in seeds
            for arm in ARMS
        }
        trained = {key: run.result() for key, run in runs.items()}
        values = {
            (arm, seed, day, i): pool.submit(
                held_out_value, lesson, seed, args.policy, args.scenario, args.held_out_users, args.held_out_seed
            )
            for (arm, seed), run in trained.items()
            for day, lessons in run["lessons"].items()
            for i, lesson in enumerate(lessons)
        }
        valued = {key: v.result() for key, v in values.items()}

    def fraction(arm: str, seed: int, day: float) -> float:
        vs = [v for (a, s, d, _), v in valued.items() if (a, s, d) == (arm, seed, day)]
        return statistics.fmean(v["chosen_profit"] / v["oracle_profit"] for v in vs)

    curve = []
    for day in at:
        row: dict[str, Any] = {"day": day}
        for arm in ARMS:
            row[arm] = {str(seed): round(fraction(arm, seed, day), 4) for seed in seeds}
            row[f"{arm}_mean"] = round(statistics.fmean(row[arm].values()), 4)
        diffs = [row["sharing"][str(s)] - row["apart"][str(s)] for s in seeds]
        row["sharing_minus_apart"] = [round(d, 4) for d in diffs]
        row["sharing_minus_apart_mean"] = round(statistics.fmean(diffs), 4)
        curve.append(row)
    any_value = next(iter(valued.values()))
    result: dict[str, Any] = {
        "machine": machine(),
        "scenario": args.scenario,
        "days": args.days,
        "users": args.users,
        "seeds": seeds,
        "policy": args.policy,
        "workers": args.workers,
        "share_s": args.share_s,
        "held_out": {"users": args.held_out_users, "seed": args.held_out_seed, "decisions": any_value["decisions"]},
        "held_out_best_fixed_fraction": round(any_value["best_fixed_profit"] / any_value["oracle_profit"], 4),
        "curve": curve,
        "runs": {
            f"{arm}/{seed}": {k: v for k, v in run.items() if k != "lessons"} for (arm, seed), run in trained.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"== what each worker has learned, valued on a held-out day ({args.held_out_users} other shoppers, "
        f"seed {args.held_out_seed}, learning off): expected profit as % of the oracle's"
    )
    print(
        f"   {args.scenario}, {args.users} shoppers, {args.policy}, {args.workers} workers sharing lessons every "
        f"{args.share_s:g} s of event time or apart, against one worker with all the traffic; seeds {args.seeds}; "
        f"the best fixed offer earns {100 * result['held_out_best_fixed_fraction']:.1f}% there"
    )
    print(f"  {'after day':>9s}  {'one':>7s}  {'sharing':>7s}  {'apart':>7s}  sharing − apart per seed")
    for row in curve:
        per_seed = "  ".join(f"{100 * d:+.2f}" for d in row["sharing_minus_apart"])
        print(
            f"  {row['day']:9g}  {100 * row['one_mean']:6.2f}%  {100 * row['sharing_mean']:6.2f}%  "
            f"{100 * row['apart_mean']:6.2f}%  {100 * row['sharing_minus_apart_mean']:+.2f} pts ({per_seed})"
        )
    print(f"  ({result['seconds']:.0f} s on {machine()['cores']} cores)")
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
