"""``make bench-policies``: what each bandit policy earns on the simulated shop, and what a decision costs.

**Profit, closed loop.** For each scenario (``stationary`` and ``abrupt`` by default), the simulator's shoppers
meet the processing core in process (``stream.simulator.closed_loop_run``): every decision point is answered by
the policy, shoppers respond to the offer shown, purchases become rewards (margin × revenue − the offer's cost)
that the policy learns from. Each policy runs on the same shoppers and seed for ``--days`` days (default 60) with
``--users`` shoppers (default 40,000: about 1,700 decisions a day, a shop's traffic; the contextual policy needs
it to pay), in ``--jobs`` processes (default: one per core; each run is deterministic, so the figures do not
depend on it; about 45 minutes on two cores). The simulator knows every offer's expected reward at every
decision point, so for each run this reports

* ``chosen``: the expected profit of the offers the policy chose (no purchase noise), and as a fraction of the
  oracle's (the best offer at every decision, knowing the shopper's latent traits);
* ``best_fixed``: the best single offer shown at *the same* decision points (the simulator's expectation for
  each offer, summed; ``fixed_profit`` has every offer's), and the fixed-offer policy itself run closed loop;
* ``realised``: the rewards the worker actually attributed (with purchase noise), and the share of
  ``discount_15`` (the biggest discount) among decisions in the last third of the run.

**With the nightly job** (``--nightly``). By default the closed loop runs the worker's core alone. With
``--nightly`` each policy also runs as the whole system (:class:`NightlyJob`, rows marked ``+ nightly``): the
core's events and decisions go to an archive, at every simulated midnight the nightly retrain (recency sample,
XGBoost, gate) writes to a registry, and a promoted snapshot is swapped into the core as the worker's registry
watcher does. Each night replays the archive to rebuild its features, so a 60-day run takes about half an hour.
Without a snapshot its scores in the policy's context (``bandits.context.SNAPSHOT_TERMS``) are 0; with
``snapshot_terms=false`` (below) the whole system chooses exactly what its core chooses.

**Intervals.** For one seed and size every run meets the same decision points (the simulator plans its
sessions up front), so two runs, or a run and a fixed offer, are compared day by day: each ratio is printed
with a 95 % interval from the paired daily differences (:func:`paired_ratio`), against the best fixed offer on
every row, and below the rows the whole system against its core alone and each policy against the first.
The interval is this run's day-to-day noise; another seed's shoppers move a ratio by about as much again.

**Several workers** (``--fleet 2``, the default; 0: not). The first policy also runs as that many cores sharing
the shop's traffic as the workers of one consumer group do (:class:`Fleet`: each shopper's events to the core
that owns the shopper's partition), once swapping lessons every ``--share-s`` seconds of event time (the one
brain, :mod:`stream.core.lessons`, through JSON as over the model topic) and once not; printed beside the one
worker's profit, as ratios to it.

**Cost per decision.** Decision contexts logged by a short replay (the worker's own features and scores, 5
offers, the default context of ``len(DEFAULT_CONTEXT)`` terms) go through each policy's ``choose`` (with a
per-decision seeded generator, as in the worker) and ``update``; beside them the River learners' cost per
decision (predict and learn of the intent, price-sensitivity and segment learners). Median µs over the
contexts, one process, wall clock (``time.perf_counter_ns``).

**Knobs.** A policy in ``--policies`` may carry settings of its own after its name, ``name:knob=value:...``
(values read as JSON where they parse): ``--policies linear_thompson,linear_thompson:conservative=false`` runs
the default beside plain Thompson sampling (conservative mode off) on the same shoppers. One knob is the
bench's own: ``snapshot_terms=false`` takes the nightly snapshot's scores out of the policy's context
(``bandits.context.SNAPSHOT_TERMS``), which only matters with ``--nightly``.

Printed, and written to ``.run/bench/policies.json``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bandits.context import DEFAULT_CONTEXT, DEFAULT_LIFT_CONTEXT, SNAPSHOT_LIFT_TERMS, SNAPSHOT_TERMS
from bandits.factory import make_policy
from bench.machine import machine, process_pool, write_results
from models.behaviour.features import user_vector
from models.history.archive import ArchiveWriter
from models.learners.factory import make_learners
from models.snapshots.registry import Registry
from models.snapshots.retrain import retrain_nightly
from stream.app.build import build_processor
from stream.app.replay import decider
from stream.app.settings import Settings, load_settings
from stream.core.records import Output, OutputKind, SourceRecord
from stream.engine.processor import Processor
from stream.io.file_sink import ArchiveSink
from stream.kafka.clients import partition_for_key
from stream.lab.backtest import paired_interval
from stream.simulator import Simulation, closed_loop_run

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("linear_thompson", "linucb", "thompson")
DAY_MS = 86_400_000


def policy_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A policy's name and its knobs from ``name`` or ``name:knob=value:...`` (values as JSON where they parse).

    >>> policy_spec("linear_thompson:conservative=false:baseline_offer=discount_5")
    ('linear_thompson', {'conservative': False, 'baseline_offer': 'discount_5'})
    """
    name, *pairs = spec.split(":")
    knobs: dict[str, Any] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        try:
            knobs[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            knobs[key] = text
    return name, knobs


def shop_settings(seed: int, policy: str, archive: Path | None = None, **knobs: Any) -> Settings:
    if not knobs.pop("snapshot_terms", True):  # the policy's context without the nightly snapshot's scores
        knobs = {
            "context": [t for t in DEFAULT_CONTEXT if t not in SNAPSHOT_TERMS],
            "lift_context": [t for t in DEFAULT_LIFT_CONTEXT if t not in SNAPSHOT_LIFT_TERMS],
        } | knobs
    models = {} if archive is None else {"models": {"archive": str(archive), "archive_writer_id": "bench-policies"}}
    return load_settings(overrides={"seed": seed, "policy": {"name": policy, **knobs}, **models}, env={})


class NightlyJob:
    """The nightly job inside an in-process closed loop: what the core outputs is archived, and before the first
    event of each simulated day the retrain as of the day before runs into ``workdir/registry``; a snapshot the
    gate promotes is swapped into the core (the worker's registry watcher does the same between batches). No night
    runs at or after ``end_ms`` (the simulator's horizon: the few sessions still running then need no new model)."""

    def __init__(
        self, core: Processor, settings: Settings, workdir: Path, start_ms: int, end_ms: int, seed: int
    ) -> None:
        self.core = core
        self.settings = settings
        self.seed = seed
        self.archive = workdir / "archive"
        self.registry = workdir / "registry"
        self.sink = ArchiveSink(ArchiveWriter(self.archive, "bench-policies"))
        self.midnight = start_ms + DAY_MS
        self.end_ms = end_ms
        self.nights = 0
        self.promoted = 0
        self.train_s = 0.0

    def before(self, event: Mapping[str, Any]) -> None:
        """Run the nights that end at or before the event (the simulator stamps events in epoch milliseconds)."""
        ts_ms = int(event["ts"])
        while self.midnight <= ts_ms and self.midnight < self.end_ms:
            self.sink.flush()
            started = time.perf_counter()
            day = datetime.fromtimestamp((self.midnight - DAY_MS) / 1000, UTC).date()
            report = retrain_nightly(
                self.archive,
                self.registry,
                day,
                self.settings.models,
                self.settings.processing,
                self.settings.processing.offers.terms(),
                self.seed,
            )
            self.train_s += time.perf_counter() - started
            self.nights += 1
            if report["gate"]["promote"]:
                self.promoted += 1
                self.core.model_snapshot = Registry(self.registry).load_current()
            self.midnight += DAY_MS

    def after(self, outputs: Sequence[Output]) -> None:
        self.sink.write(outputs)

    def close(self) -> None:
        self.sink.close()

    def summary(self) -> dict[str, Any]:
        return {"nights": self.nights, "promoted": self.promoted, "train_s": round(self.train_s, 1)}


class Fleet:
    """Several cores sharing one shop's traffic as workers of one consumer group do: each shopper's events go to
    the core that owns the shopper's partition (Kafka's partitioner on the user id, ``PARTITIONS`` partitions
    dealt round-robin). With ``share_s`` the cores swap lessons (:mod:`stream.core.lessons`, through JSON as
    over the model topic) every ``share_s`` seconds of event time; without, each learns from its own share."""

    PARTITIONS = 12

    def __init__(self, cores: Sequence[Processor], share_s: float | None) -> None:
        self.cores = list(cores)
        self.deciders = [decider(core) for core in self.cores]
        self.share_ms = None if share_s is None else int(share_s * 1000)
        self.next_share: int | None = None
        self.lessons = 0

    def decide(self, event: dict[str, Any]) -> tuple[str, str] | None:
        ts = int(event["ts"])
        if self.share_ms is not None:
            if self.next_share is None:
                self.next_share = ts + self.share_ms
            while ts >= self.next_share:
                self.share()
                self.next_share += self.share_ms
        partition = partition_for_key(str(event["user_id"]).encode(), self.PARTITIONS)
        return self.deciders[partition % len(self.cores)](event)

    def share(self) -> None:
        lessons = [core.lesson() for core in self.cores]
        for i, lesson in enumerate(lessons):
            if lesson is None:
                continue
            sent = orjson.loads(orjson.dumps(lesson))
            self.lessons += 1
            for j, core in enumerate(self.cores):
                if j != i:
                    core.fold(sent)


def closed_loop(
    scenario: str,
    days: float,
    users: int,
    seed: int,
    policy: str,
    nightly: bool = False,
    workers: int = 1,
    share_s: float | None = None,
    **knobs: Any,
) -> dict[str, Any]:
    """One closed-loop run of ``policy``: expected and realised profit, the oracle's, the best fixed offer's;
    with ``nightly``, the nightly retrain and the snapshot swap in the loop (:class:`NightlyJob`); with
    ``workers`` > 1, that many cores share the traffic (:class:`Fleet`), swapping lessons every ``share_s``."""
    with tempfile.TemporaryDirectory(prefix="offerstream-bench-policies-") as tmp:
        workdir = Path(tmp) if nightly else None
        settings = shop_settings(seed, policy, archive=None if workdir is None else workdir / "archive", **knobs)
        cores = [build_processor(settings) for _ in range(workers)]
        core = cores[0]
        sim = Simulation(scenario, days=days, users=users, seed=seed, closed_loop=True)
        if workers > 1 and nightly:
            raise ValueError("the nightly job runs with one core")
        job = None if workdir is None else NightlyJob(core, settings, workdir, sim.start_ms, sim.end_ms, seed)
        fleet = Fleet(cores, share_s) if workers > 1 else None
        decide: Callable[[dict[str, Any]], tuple[str, str] | None]
        if fleet is not None:
            decide = fleet.decide
        else:
            decide = decider(core) if job is None else decider(core, before=job.before, after=job.after)
        shown: list[str] = []

        def record(event: dict[str, Any]) -> tuple[str, str] | None:
            answer = decide(event)
            if answer is not None:
                shown.append(answer[0])
            return answer

        started = time.perf_counter()
        try:
            loop = closed_loop_run(sim, record)["loop"]
        finally:
            if job is not None:
                job.close()
        seconds = time.perf_counter() - started
    fixed = loop["fixed_profit"]
    best = max(fixed, key=lambda o: fixed[o])
    daily = [
        {"day": d["day"], "chosen_profit": d["chosen_profit"], "best_fixed_profit": d["fixed_profit"][best]}
        for d in loop["daily"]
    ]
    late = shown[2 * len(shown) // 3 :]
    realised = sum(v for c in cores for k, v in c.counters.items() if k.startswith("reward_cents.")) / 100
    return {
        "policy": f"fixed:{knobs['fixed_offer']}" if policy == "fixed" else _label(policy, knobs),
        "workers": workers,
        "share_s": share_s,
        "lessons": 0 if fleet is None else fleet.lessons,
        "decisions": loop["decided"],
        "chosen_profit": loop["chosen_profit"],
        "oracle_profit": loop["oracle_profit"],
        "oracle_fraction": round(loop["chosen_profit"] / loop["oracle_profit"], 4),
        "best_fixed_offer": best,
        "best_fixed_profit": fixed[best],
        "vs_best_fixed": round(loop["chosen_profit"] / fixed[best], 4),
        "vs_best_fixed_interval": paired_ratio(
            {d["day"]: d["chosen_profit"] for d in daily}, {d["day"]: d["best_fixed_profit"] for d in daily}
        ),
        "fixed_profit": fixed,
        "realised_reward": round(realised, 2),
        "chosen": loop["chosen"],
        "late_discount_15_share": round(late.count("discount_15") / max(1, len(late)), 4),
        "seconds": round(seconds, 1),
        "daily": daily,
    } | ({} if job is None else {"nightly": job.summary()})


def paired_ratio(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, float]:
    """``Σa / Σb`` over the days both have, with a 95 % interval from the paired daily differences ``a − b``
    (normal, the days taken as independent, as the lab's paired comparisons are): ``lo95`` above 1 means ``a``
    earned more beyond the day-to-day noise of this run; it says nothing of another seed's.

    >>> r = paired_ratio({0: 110.0, 1: 104.0, 2: 108.0}, {0: 100.0, 1: 100.0, 2: 100.0})
    >>> r["ratio"], r["lo95"] > 1.0, r["hi95"] < 1.13
    (1.0733, True, True)
    """
    days = sorted(set(a) & set(b))
    diff = paired_interval(np.array([a[d] - b[d] for d in days]))
    total = sum(b[d] for d in days)
    return {
        "ratio": round(sum(a[d] for d in days) / total, 4),
        "lo95": round(1 + len(days) * diff["lo95"] / total, 4),
        "hi95": round(1 + len(days) * diff["hi95"] / total, 4),
    }


def _paired_rows(runs: Sequence[Mapping[str, Any]], arms: Sequence[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Each run beside the one it is measured against, on the same shoppers, paired by day: the whole system
    (``+ nightly``) against the same policy's core alone, and every other policy's core against the first's."""
    core = {p: runs[i] for i, (p, nightly) in enumerate(arms) if not nightly}
    pairs = [(runs[i], core[p], " + nightly") for i, (p, nightly) in enumerate(arms) if nightly]
    first = arms[0][0]
    pairs += [(core[p], core[first], "") for p, nightly in arms if not nightly and p != first]

    def daily(run: Mapping[str, Any]) -> dict[int, float]:
        return {d["day"]: d["chosen_profit"] for d in run["daily"]}

    return [{"a": a["policy"] + suffix, "b": b["policy"]} | paired_ratio(daily(a), daily(b)) for a, b, suffix in pairs]


def _label(policy: str, knobs: Mapping[str, Any]) -> str:
    """The policy as ``--policies`` names it (:func:`policy_spec` reads it back)."""
    texts = (v if isinstance(v, str) else orjson.dumps(v).decode() for v in knobs.values())
    return ":".join([policy, *(f"{k}={t}" for k, t in zip(knobs, texts, strict=True))])


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
    parser.add_argument("--users", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help="comma-separated, each name[:knob=value...] (default: %(default)s)",
    )
    parser.add_argument(
        "--nightly",
        action="store_true",
        help="also run each policy as the whole system, the nightly retrain and snapshot swap in the loop, paired "
        "with its core alone (~30 min a 60-day run)",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=2,
        help="also run the first policy as this many workers sharing the traffic, with and without sharing "
        "lessons (0: not)",
    )
    parser.add_argument("--share-s", type=float, default=1.0, help="seconds of event time between lessons")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="closed-loop runs in parallel")
    parser.add_argument("--out", type=Path, default=REPO / ".run" / "bench" / "policies.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    policies = tuple(args.policies.split(","))
    specs = {p: policy_spec(p) for p in policies}
    result: dict[str, Any] = {
        "machine": machine(),
        "days": args.days,
        "users": args.users,
        "seed": args.seed,
        "nightly": args.nightly,
    }
    print(f"== cost per decision ({machine()['cpu']}, {machine()['cores']} cores)")
    cost = decision_cost(logged_contexts(args.seed), args.seed)
    result["cost"] = cost
    for name in POLICIES:
        print(f"  {name:16s} choose {cost[name]['choose_us']:8.1f} µs   update {cost[name]['update_us']:8.1f} µs")
    for name, us in cost["river_learners"].items():
        print(f"  river {name:22s} {us:8.1f} µs (predict + learn)")
    result["closed_loop"] = {}
    scenarios = args.scenarios.split(",")
    arms = [(p, False) for p in policies] + ([(p, True) for p in policies] if args.nightly else [])
    with process_pool(args.jobs) as pool:
        runs = {
            (scenario, p, nightly): pool.submit(
                closed_loop, scenario, args.days, args.users, args.seed, specs[p][0], nightly, **specs[p][1]
            )
            for scenario in scenarios
            for p, nightly in arms
        }
        by_scenario = {scenario: [runs[scenario, p, n].result() for p, n in arms] for scenario in scenarios}
        fleets = {
            (scenario, share): pool.submit(
                closed_loop, scenario, args.days, args.users, args.seed, specs[policies[0]][0],
                workers=args.fleet, share_s=share, **specs[policies[0]][1],
            )
            for scenario in scenarios
            for share in (args.share_s, None)
            if args.fleet > 1
        }  # fmt: skip
        fixed = {
            scenario: pool.submit(
                closed_loop, scenario, args.days, args.users, args.seed, "fixed",
                fixed_offer=by_scenario[scenario][0]["best_fixed_offer"],
            )
            for scenario in scenarios
        }  # fmt: skip
        for scenario in scenarios:
            by_scenario[scenario].append(fixed[scenario].result())
        fleet_runs = {key: run.result() for key, run in fleets.items()}
    result["paired"] = {}
    for scenario in scenarios:
        print(f"== closed loop: {scenario}, {args.days:g} days, {args.users} shoppers, seed {args.seed}")
        for r in by_scenario[scenario]:
            name = r["policy"] + (" + nightly" if "nightly" in r else "")
            i = r["vs_best_fixed_interval"]
            print(
                f"  {name:32s} decisions {r['decisions']:6d}  expected profit {r['chosen_profit']:10.0f}"
                f"  = {100 * r['oracle_fraction']:5.1f}% of oracle  {r['vs_best_fixed']:.4f}× best fixed"
                f" ({r['best_fixed_offer']}) [{i['lo95']:.4f}, {i['hi95']:.4f}]  realised {r['realised_reward']:10.0f}"
                f"  late discount_15 {100 * r['late_discount_15_share']:4.1f}%  ({r['seconds']:.0f} s)"
            )
        result["paired"][scenario] = _paired_rows(by_scenario[scenario], arms)
        for row in result["paired"][scenario]:
            interval = f"[{row['lo95']:.4f}, {row['hi95']:.4f}]"
            print(f"  {row['a']} / {row['b']}: {row['ratio']:.4f} {interval} (paired by day)")
        result["closed_loop"][scenario] = by_scenario[scenario]
        if args.fleet > 1:
            one = by_scenario[scenario][0]
            shared, apart = fleet_runs[scenario, args.share_s], fleet_runs[scenario, None]
            result.setdefault("fleet", {})[scenario] = fleet = {
                "policy": policies[0],
                "workers": args.fleet,
                "share_s": args.share_s,
                "one_worker_profit": one["chosen_profit"],
                "sharing_profit": shared["chosen_profit"],
                "apart_profit": apart["chosen_profit"],
                "sharing_over_one": round(shared["chosen_profit"] / one["chosen_profit"], 4),
                "apart_over_one": round(apart["chosen_profit"] / one["chosen_profit"], 4),
                "lessons": shared["lessons"],
                "runs": {"sharing": shared, "apart": apart},
            }
            print(
                f"  one brain ({policies[0]}, {args.fleet} workers, shoppers dealt by partition): one worker "
                f"{one['chosen_profit']:.0f}; {args.fleet} sharing lessons every {args.share_s:g} s of event time "
                f"{shared['chosen_profit']:.0f} ({fleet['sharing_over_one']:.4f}× one worker, {shared['lessons']} "
                f"lessons); {args.fleet} apart {apart['chosen_profit']:.0f} ({fleet['apart_over_one']:.4f}×)"
            )
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
