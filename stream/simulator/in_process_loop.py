"""An in-process closed loop: a decision function sees every event and answers the decision points.

``decide(event) -> (offer, decision_id) | None`` is called for every event in order (the processing core
goes there). For a decision-eligible event its answer is passed to ``Simulation.respond`` (None: no
offer, the session stays open to a later decision point); answers to other events are ignored (counted).

Regret without purchase noise: over the *decided* events (an offer was shown), ``oracle_profit`` sums the
best offer's expected reward, ``chosen_profit`` the chosen offer's and ``none_profit`` that of ``none``;
``regret = oracle_profit - chosen_profit``. ``fixed_profit[o]`` sums offer ``o``'s expected reward over the same
decision points: what always showing ``o`` would have earned there (its maximum is the best fixed offer, on
exactly the decisions the policy faced). ``daily`` has the same sums per day of the run (day ``i`` starts
``i`` days after the simulation's start), for intervals over days on paired runs.

>>> from stream.simulator import Simulation
>>> sim = Simulation(days=1, users=200, seed=1, closed_loop=True)
>>> out = closed_loop_run(sim, lambda ev: ("discount_5", "d-" + ev["event_id"]))
>>> loop = out["loop"]
>>> loop["decided"] == out["offers_shown"].get("discount_5", 0) == sum(d["decided"] for d in loop["daily"])
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from stream.simulator.simulation import DAY_MS, Simulation

Decide = Callable[[dict[str, Any]], "tuple[str, str] | None"]


def closed_loop_run(sim: Simulation, decide: Decide, max_events: int | None = None) -> dict[str, Any]:
    """Drive ``sim`` (built with ``closed_loop=True``) to its end, or ``max_events``; returns its stats
    with a ``loop`` section: decisions, ignored answers and the oracle's totals for regret."""
    if not sim.closed_loop:
        raise ValueError("closed_loop_run needs Simulation(..., closed_loop=True)")
    decided = no_offer = ignored = events = 0
    oracle = chosen = none = 0.0
    chosen_counts: Counter[str] = Counter()
    fixed: Counter[str] = Counter()
    daily: dict[int, dict[str, Any]] = {}
    while max_events is None or events < max_events:
        ev = sim.next_event()
        if ev is None:
            if sim.done():
                break
            raise RuntimeError(f"{sim.blocked_count()} sessions blocked with nothing left to answer")
        events += 1
        answer = decide(ev)
        event_id = ev["event_id"]
        if not sim.awaiting_response(event_id):
            ignored += answer is not None
            continue
        offer, decision_id = answer if answer is not None else (None, None)
        expected = sim.expected_profit(event_id)
        if offer is not None and expected is not None:
            decided += 1
            chosen_counts[offer] += 1
            oracle += max(expected.values())
            chosen += expected[offer]
            none += expected.get("none", 0.0)
            fixed.update(expected)
            day = daily.setdefault(
                (ev["ts"] - sim.start_ms) // DAY_MS, {"decided": 0, "chosen_profit": 0.0, "fixed_profit": Counter()}
            )
            day["decided"] += 1
            day["chosen_profit"] += expected[offer]
            day["fixed_profit"].update(expected)
        elif offer is None:
            no_offer += 1
        sim.respond(event_id, offer, decision_id)
    out = sim.stats()
    out["loop"] = {
        "events": events,
        "decided": decided,
        "no_offer": no_offer,
        "ignored_answers": ignored,
        "chosen": dict(sorted(chosen_counts.items())),
        "oracle_profit": round(oracle, 4),
        "chosen_profit": round(chosen, 4),
        "none_profit": round(none, 4),
        "fixed_profit": {o: round(v, 4) for o, v in sorted(fixed.items())},
        "regret": round(oracle - chosen, 4),
        "daily": [
            {
                "day": d,
                "decided": daily[d]["decided"],
                "chosen_profit": round(daily[d]["chosen_profit"], 4),
                "fixed_profit": {o: round(v, 4) for o, v in sorted(daily[d]["fixed_profit"].items())},
            }
            for d in sorted(daily)
        ],
    }
    return out
