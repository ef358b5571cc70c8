"""Decision value in a closed loop: each strategy's own price model chooses the offers of its own simulated run.

For every strategy the scenario is simulated again from the same seed, in closed loop. At each decision point
the strategy's price model, as it stands, scores the session under every offer; with probability ``1 − ε`` the
offer with the highest ``P(buy | x, offer) × (margin × cart − cost)`` (the worker's value at stake) is shown,
otherwise one drawn uniformly (``ε`` = :data:`EPSILON`, so the model keeps seeing every offer; uniform until the
strategy has a model), and the propensity is logged. The session's first decision becomes a price row when it
closes: the online learner learns it at once, the snapshots at midnight (their cadence as in the lab). What the
run earns is the simulator's expected profit of the offers actually shown, against the best offer's at the same
decision points (the oracle) and showing nothing — the shoppers react to the offers, so each strategy's run
differs from the others' after its first decision.

This is a bench of the models' freshness under one simple decision rule (ε-greedy on the model), not of the
production bandit: the contextual Thompson sampler of ``bandits/`` would explore differently.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from models.behaviour.features import FEATURE_NAMES
from stream.engine.settings import ProcessingSettings
from stream.lab.backtest import LabConfig, paired_interval
from stream.lab.rows import Logged, RowCollector
from stream.lab.strategies import Day, Strategy, make_strategy
from stream.simulator import Simulation, closed_loop_run

EPSILON = 0.1
DAY_MS = 86_400_000


def run_closed_loop(
    name: str,
    scenario: str,
    days: int,
    users: int,
    seed: int,
    config: LabConfig,
    processing: ProcessingSettings,
    on_day: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One strategy's closed loop; its daily and total profit against the oracle and against showing nothing."""
    offers = config.offers
    terms = np.array([[o.share, 1.0 if o.flat_fee > 0 else 0.0] for o in offers], dtype=np.float32)
    rng = random.Random(seed)
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed, closed_loop=True)
    decisions: dict[str, Logged] = {}
    holder: list[Strategy] = []
    collector = RowCollector(
        processing, decisions=decisions, on_price_row=lambda k: holder[0].learn_now(*collector.price_row(k))
    )
    strategy = make_strategy(
        name, collector.price_so_far(), seed, config.params, config.tiers, None, config.retrain_every
    )
    holder.append(strategy)
    daily: list[dict[str, Any]] = []
    today = {"profit": 0.0, "oracle_profit": 0.0, "none_profit": 0.0, "decisions": 0, "explored": 0}
    day_end = sim.start_ms + DAY_MS

    def night(end_ms: int) -> None:
        rows = collector.price_so_far()
        strategy.extend(rows)
        closed = np.flatnonzero((rows.closed_ms >= end_ms - DAY_MS) & (rows.closed_ms < end_ms))
        closed = closed[np.argsort(rows.closed_ms[closed], kind="stable")].astype(np.int64)
        day = datetime.fromtimestamp((end_ms - DAY_MS) / 1000, UTC).date()
        trained = strategy.nightly(Day(day, end_ms - DAY_MS, end_ms, np.zeros(0, dtype=np.int64), closed))
        daily.append(
            {"day": day.isoformat()}
            | {k: round(v, 4) if isinstance(v, float) else v for k, v in today.items()}
            | {"train_cpu_s": round(trained.cpu_s, 4) if trained else 0.0, "train_rows": trained.rows if trained else 0}
        )
        for k in today:
            today[k] = 0 if isinstance(today[k], int) else 0.0
        if on_day is not None:
            on_day()

    def choose(features: dict[str, float]) -> int | None:
        x = np.array([features.get(n, np.nan) for n in FEATURE_NAMES], dtype=np.float32)
        X = np.hstack([np.repeat(x[None, :], len(offers), axis=0), terms])
        p = strategy.score(X)
        if p is None:
            return None
        cart = float(np.nan_to_num(features.get("cart_value", 0.0)))
        values = p * np.array([config.margin * cart - (o.share * cart + o.flat_fee) for o in offers])
        return int(np.argmax(values))

    def decide(event: dict[str, Any]) -> tuple[str, str] | None:
        nonlocal day_end
        while event["ts"] >= day_end:
            night(day_end)
            day_end += DAY_MS
        features = collector.add(event)
        event_id = event["event_id"]
        if not sim.awaiting_response(event_id) or features is None:
            return None  # not a decision point, or past the session's cap: no offer, as the worker does
        greedy = choose(features)
        probs = np.full(len(offers), 1.0 / len(offers))
        if greedy is not None:
            probs = np.full(len(offers), EPSILON / len(offers))
            probs[greedy] += 1.0 - EPSILON
        k = rng.choices(range(len(offers)), weights=probs.tolist())[0]
        truth = sim.expected_profit(event_id) or {}
        offer = offers[k]
        decisions[event_id] = Logged(offer.share, 1.0 if offer.flat_fee > 0 else 0.0, float(probs[k]), truth)
        today["profit"] += truth.get(offer.name, 0.0)
        today["oracle_profit"] += max(truth.values(), default=0.0)
        today["none_profit"] += truth.get("none", 0.0)
        today["decisions"] += 1
        today["explored"] += int(greedy is None or k != greedy)
        return offer.name, "lab-" + event_id

    closed_loop_run(sim, decide)
    night(day_end)
    oracle = sum(d["oracle_profit"] for d in daily)
    return {
        "daily": daily,
        "summary": {
            "decisions": sum(d["decisions"] for d in daily),
            "profit": round(sum(d["profit"] for d in daily), 2),
            "oracle_profit": round(oracle, 2),
            "profit_fraction": round(sum(d["profit"] for d in daily) / oracle, 4) if oracle else None,
            "none_fraction": round(sum(d["none_profit"] for d in daily) / oracle, 4) if oracle else None,
            "train_cpu_s": round(sum(d["train_cpu_s"] for d in daily), 3),
        },
    }


def compare_closed_loops(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The strategy whose run earned the largest share of its oracle, and every other's paired daily difference
    in that share (days in common), with a 95 % interval; and a sentence that says it."""
    fractions = {n: r["summary"]["profit_fraction"] for n, r in runs.items() if r["summary"]["profit_fraction"]}
    if len(fractions) < 1:
        return {"best": None, "versus_best": {}, "recommendation": "No closed-loop decisions to compare."}
    best = max(fractions, key=lambda n: fractions[n])

    def shares(name: str) -> dict[str, float]:
        return {d["day"]: d["profit"] / d["oracle_profit"] for d in runs[name]["daily"] if d["oracle_profit"] > 0}

    base = shares(best)
    versus = {}
    for name in fractions:
        if name == best:
            continue
        other = shares(name)
        days = sorted(set(base) & set(other))
        if len(days) >= 2:
            versus[name] = paired_interval(np.array([other[d] - base[d] for d in days]))
    listed = ", ".join(f"{n} {v:.4f}" for n, v in sorted(fractions.items(), key=lambda kv: -kv[1]))
    none = runs[best]["summary"]["none_fraction"]
    behind = ", ".join(
        f"{n} {d['mean']:+.4f} ({d['lo95']:+.4f} to {d['hi95']:+.4f}, {'worse' if d['hi95'] < 0 else 'a tie'})"
        for n, d in sorted(versus.items(), key=lambda kv: -kv[1]["mean"])
    )
    text = (
        f"Closed loop (each strategy's price model choosing its own run's offers, ε-greedy with ε = {EPSILON}): "
        f"share of the oracle's profit {listed}; always showing nothing {none:.4f}."
        + (f" Daily share against {best}'s (95% CI): {behind}." if behind else "")
    )
    return {"best": best, "versus_best": versus, "recommendation": text}
