"""``make bench-drift``: do the online learners' drift alarms mean something?

The simulated shop's events (open loop, no offers steering them) go through the processing core in batches, as a
replay would, and every drift alarm of every learner is recorded with its event time. Two scenarios, each run
twice, with the drift monitors' warm-up (``processing.drift_warmup_days``) as configured and switched off:

* ``stationary``: nothing changes, so every alarm is false. Printed per learner: alarms per simulated week
  during the warm-up and after it (the target: none after it).
* ``abrupt``: the competitor's launch halfway through (buying falls, shipping sensitivity rises). Alarms before
  the launch are false; the first alarm after it gives the detection delay (days of event time), or "not
  detected" when none comes before the end. The default 90 days put the launch at day 45, so the monitors
  have watched 17 days after the 28-day warm-up before it: ADWIN finds a change against what it has seen, and a
  launch two days after the warm-up (a 60-day run) leaves it almost nothing to compare with.

What it measures is the monitors as shipped (ADWIN on each learner's own error, rises only, and on a
probability learner's bias, both ways), on the simulator's traffic: its signal is weaker than a real shop's, so
a miss here is a finding, not a verdict. Each alarm is printed with its day and its reason.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.machine import machine, write_results
from models.behaviour.state import DAY_MS
from stream.app.build import build_processor
from stream.app.settings import load_settings
from stream.core.records import SourceRecord
from stream.simulator import Simulation

SHIFT_AT = 0.5  # the abrupt scenario's change, as a share of the run (stream.simulator.scenarios)


def run(scenario: str, days: float, users: int, seed: int, warmup_days: float) -> dict[str, Any]:
    """One replay; each learner's alarms as days since the first event, and how many examples it watched."""
    settings = load_settings(env={}, overrides={"seed": seed, "processing": {"drift_warmup_days": warmup_days}})
    core = build_processor(settings)
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed)
    seen = dict.fromkeys(core.learners, 0)
    alarms: dict[str, list[float]] = {name: [] for name in core.learners}
    reasons: dict[str, list[str | None]] = {name: [] for name in core.learners}
    started_at = time.perf_counter()
    first_ms: int | None = None
    batch: list[SourceRecord] = []
    events = 0

    def process() -> None:
        core.process_batch(batch)
        batch.clear()
        for name, learner in core.learners.items():
            if learner.drift.alarms > seen[name]:  # at most one per learner per batch of 500 events, in practice
                seen[name] = learner.drift.alarms
                at = learner.drift.last_alarm_ts_ms
                alarms[name].append(round((at - (first_ms or 0)) / DAY_MS, 2) if at is not None else float("nan"))
                reasons[name].append(learner.drift.last_alarm_reason)

    while (event := sim.next_event()) is not None:
        first_ms = event["ts"] if first_ms is None else first_ms
        batch.append(SourceRecord(orjson.dumps(event), "clickstream", 0, events))
        events += 1
        if len(batch) == 500:
            process()
    process()
    return {
        "scenario": scenario,
        "warmup_days": warmup_days,
        "events": events,
        "seconds": round(time.perf_counter() - started_at, 1),
        "learners": {
            name: {
                "alarms_at_day": alarms[name],
                "reasons": reasons[name],
                "watched": learner.drift.n,
                "learned": learner.version,
            }
            for name, learner in core.learners.items()
        },
    }


def summarise(r: dict[str, Any], days: float) -> dict[str, dict[str, Any]]:
    """Per learner: false alarms per week in the warm-up and after it, and (abrupt) the detection delay."""
    warmup = r["warmup_days"] or 0.0
    shift = days * SHIFT_AT if r["scenario"] == "abrupt" else None
    out = {}
    for name, learner in r["learners"].items():
        at = learner["alarms_at_day"]
        false = [a for a in at if shift is None or a < shift]
        quiet_end = shift if shift is not None else days
        early = [a for a in false if a < warmup]
        later = [a for a in false if a >= warmup]
        after = [a for a in at if shift is not None and a >= shift]
        out[name] = {
            "false_per_week_in_warmup": round(7 * len(early) / min(warmup, quiet_end), 2) if warmup > 0 else None,
            "false_per_week_after_warmup": round(7 * len(later) / (quiet_end - warmup), 2)
            if quiet_end > warmup
            else None,
            "detection_delay_days": round(after[0] - shift, 2) if after else None,
        }
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=90.0, help="the abrupt launch comes halfway, after the warm-up")
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(".run/bench/drift.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # each alarm is logged as a warning; here they are counted instead
    warmup = load_settings(env={}).processing.drift_warmup_days
    print(f"== drift alarms ({machine()['cpu']}, {machine()['cores']} cores)")
    print(
        f"  the processing core over the simulator's open-loop events, {args.days:g} days, {args.users} shoppers, "
        f"seed {args.seed}; ADWIN on each learner's own error (rises only) and bias (both ways); "
        f"warm-up {warmup:g} days vs none"
    )
    result: dict[str, Any] = {"machine": machine(), "days": args.days, "users": args.users, "seed": args.seed}
    for scenario in ("stationary", "abrupt"):
        for w in (warmup, 0.0):
            r = run(scenario, args.days, args.users, args.seed, w)
            r["summary"] = summary = summarise(r, args.days)
            result.setdefault(scenario, {})["warmup" if w else "no_warmup"] = r
            shift = f", launch at day {args.days * SHIFT_AT:g}" if scenario == "abrupt" else ""
            print(f"  {scenario}, warm-up {w:g} days{shift} ({r['events']:,} events, {r['seconds']:.0f} s):")
            for name, s in summary.items():
                learner = r["learners"][name]
                alarms = ", ".join(
                    f"{d:g} ({why})" for d, why in zip(learner["alarms_at_day"], learner["reasons"], strict=True)
                )
                detected = (
                    f"; detected after {s['detection_delay_days']:g} days"
                    if s["detection_delay_days"] is not None
                    else f"; the launch not detected{' (it came in the warm-up)' if w > args.days * SHIFT_AT else ''}"
                    if scenario == "abrupt"
                    else ""
                )
                print(
                    f"    {name:18s} false alarms per week: in the warm-up {_cell(s['false_per_week_in_warmup'])}, "
                    f"after it {_cell(s['false_per_week_after_warmup'])}{detected}  (alarms at days {alarms or '-'})"
                )
    write_results(args.out, result)
    return result


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


if __name__ == "__main__":
    main()
