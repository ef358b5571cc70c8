"""``make bench-freshness``: the online intent learner against the nightly snapshot, around an abrupt shift.

What it measures: how well each of the two purchase-intent models tracks the shop while the shop changes. The
simulator runs the ``abrupt`` scenario for ``--days`` days (default 8): at half the horizon a competitor launches
free shipping, and checkout and purchase drop by 0.5 logit. For every decision the worker made, two
probabilities that the session buys are compared with what the session did:

* **online** — ``scores.intent_online``, the River learner as it was when the decision was made (it learns every
  session that reached a decision point when the session closes), read from the decision records of one replay;
* **snapshot** — the XGBoost intent model of the nightly snapshot serving that day:
  ``models.snapshots.retrain.retrain`` as of each day *d* (recency tiers, champion/challenger gate: a rejected
  challenger leaves the previous snapshot in service), then the registry's promoted snapshot scores the decisions of
  day *d + 1*. It scores the features logged with each decision (``features`` in the decision record: exactly the
  features the worker would have given it), so one replay serves every night. Day 0 has no snapshot; the snapshot
  goes live at midnight (a real run at 02:00 would serve the older one a little longer). The retrain holds out its
  newest day for the gate and ships the model trained without it, so the snapshot serving day *d + 1* learned days
  up to *d − 1*.

How: ``simulate`` → ``stream.app.replay.replay_files`` with the archive on (decisions out, events and decisions
archived) → a retrain per night into a fresh registry → both models' scores per decision. A decision's label is
whether its session has a ``purchase`` event. Per 6-hour bucket of event time: decisions, observed purchase
rate, and for each model its mean score, its calibration gap ``|mean score − observed rate|`` (calibration in
the large) and its log loss (scores clipped to [1e-6, 1 − 1e-6]). Per day: each model's AUC with a DeLong 95%
interval (ties count one half; a constant predictor's AUC is exactly 0.5). Printed, and written to
``.run/bench/freshness.json``. About three minutes on two cores with the defaults.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.machine import machine, write_results
from models.behaviour.features import as_row
from models.snapshots.quality import auc_summary, calibration, log_loss
from models.snapshots.registry import Registry, Snapshot
from models.snapshots.retrain import retrain_nightly
from stream.app.replay import replay_files
from stream.app.settings import Settings, load_settings
from stream.core.jsonl import dumps_line, open_binary
from stream.simulator import Simulation
from stream.simulator.simulation import DAY_MS, HOUR_MS, to_epoch_ms

REPO = Path(__file__).resolve().parents[1]
START_MS = to_epoch_ms(None)  # the simulator's default start, 2026-01-05T00:00:00Z (a UTC midnight)


def simulate_events(
    scenario: str, days: float, users: int, seed: int, out: Path, until_ms: int | None = None
) -> dict[str, Any]:
    """Simulate ``scenario`` over ``days`` days into ``out`` (JSON Lines); with ``until_ms``, stop before the first
    event at or after it (the scenario still sees the whole horizon, so its shift stays where it is)."""
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed)
    events = 0
    with open_binary(out, "wb") as fh:
        while (ev := sim.next_event()) is not None:
            if until_ms is not None and ev["ts"] >= until_ms:
                break
            fh.write(dumps_line(ev))
            events += 1
    return {"events": events}


def purchased_sessions(events: Path) -> set[str]:
    """Session ids with at least one ``purchase`` event: the label of every decision in them."""
    out: set[str] = set()
    with open_binary(events) as fh:
        for line in fh:
            if b'"purchase"' in line:
                ev = orjson.loads(line)
                if ev.get("type") == "purchase" and ev.get("session_id"):
                    out.add(ev["session_id"])
    return out


@dataclass
class Decisions:
    """The replay's decisions as columns: time, label, the online score (NaN without learners), features."""

    ts_ms: np.ndarray
    purchased: np.ndarray
    online: np.ndarray
    features: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ts_ms)

    def between(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Mask of the decisions with ``start_ms <= ts < end_ms``."""
        return (self.ts_ms >= start_ms) & (self.ts_ms < end_ms)


def load_decisions(path: Path, purchased: set[str]) -> Decisions:
    ts, y, online, features = [], [], [], []
    with open_binary(path) as fh:
        for line in fh:
            d = orjson.loads(line)
            ts.append(d["ts_ms"])
            y.append(1.0 if d["session_id"] in purchased else 0.0)
            online.append(d["scores"].get("intent_online", math.nan))
            features.append(d["features"])
    return Decisions(
        np.array(ts, dtype=np.int64), np.array(y, dtype=np.float64), np.array(online, dtype=np.float64), features
    )


def snapshot_intent(snapshot: Snapshot, features: Sequence[dict[str, Any]]) -> np.ndarray:
    """The snapshot's intent probability for each decision's logged features (JSON null is a missing value)."""
    columns = snapshot.columns("intent")
    if not features:
        return np.zeros(0, dtype=np.float64)
    rows = np.stack([as_row({k: math.nan if v is None else v for k, v in f.items()}, columns) for f in features])
    return snapshot.score("intent", rows).astype(np.float64)


# -- the pipeline --------------------------------------------------------------------------------------


def replay_settings(seed: int, archive: Path | None, learners: bool = True, registry: Path | None = None) -> Settings:
    """Default settings but the seed, the learners switch, the archive written and the registry scored with."""
    models: dict[str, Any] = {"learners": learners}
    if archive is not None:
        models |= {"archive": str(archive), "archive_writer_id": "bench-freshness"}
    if registry is not None:
        models["registry"] = str(registry)
    return load_settings(overrides={"seed": seed, "models": models}, env={})


def day_of_ms(ts_ms: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ts_ms // DAY_MS)


def buckets(start_ms: int, end_ms: int, width_ms: int) -> Iterable[tuple[int, int]]:
    t = start_ms
    while t < end_ms:
        yield t, min(t + width_ms, end_ms)
        t += width_ms


def recovered_after(rows: Sequence[dict[str, Any]], model: str, gap: float) -> float | None:
    """Hours from the shift to the start of the first bucket after it from which ``model``'s calibration gap stays
    under ``gap`` in every later bucket; None when it never does (or has no score there)."""
    after = [r for r in rows if r["hours_from_shift"] >= 0 and r["n"] > 0]
    start = None
    for r in after:
        g = r[model]["gap"]
        if g is None or g >= gap:
            start = None
        elif start is None:
            start = r["hours_from_shift"]
    return start


def run(
    days: int, users: int, seed: int, workdir: Path, bucket_hours: float = 6.0, recovered_gap: float = 0.05
) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    events = workdir / "events.jsonl"
    sim = simulate_events("abrupt", days, users, seed, events)
    timings["simulate_s"] = time.perf_counter() - t
    print(f"simulated {sim['events']:,} events ({days} days × {users:,} shoppers) in {timings['simulate_s']:.0f} s")

    t = time.perf_counter()
    archive = workdir / "archive"
    settings = replay_settings(seed, archive)
    processor, _, counts = replay_files([events], settings, workdir / "decisions.jsonl", workdir / "dead.jsonl")
    timings["replay_s"] = time.perf_counter() - t
    decisions = load_decisions(workdir / "decisions.jsonl", purchased_sessions(events))
    print(f"replayed: {len(decisions):,} decisions in {timings['replay_s']:.0f} s")

    t = time.perf_counter()
    registry = workdir / "registry"
    snap = np.full(len(decisions), math.nan)
    serving: dict[str, str | None] = {}  # day -> the snapshot version that served it
    first_day = day_of_ms(START_MS)
    for d in range(days):
        day = first_day + timedelta(days=d)
        lo = START_MS + d * DAY_MS
        mask = decisions.between(lo, lo + DAY_MS) if d < days - 1 else decisions.ts_ms >= lo
        current = Registry(registry).load_current() if (registry / "CURRENT").is_file() else None
        serving[day.isoformat()] = current.version if current is not None else None
        if current is not None and mask.any():
            idx = np.flatnonzero(mask)
            snap[idx] = snapshot_intent(current, [decisions.features[i] for i in idx])
        if d < days - 1:
            report = retrain_nightly(
                archive, registry, day, settings.models, settings.processing, settings.processing.offers.terms(), seed
            )
            verdict = "promoted" if report["gate"]["promote"] else f"not promoted ({report['gate']['reason']})"
            print(f"  nightly as of {day}: snapshot {report['version']} {verdict}")
    timings["nightly_s"] = time.perf_counter() - t

    shift_ms = START_MS + int(days / 2 * DAY_MS)
    end_ms = START_MS + days * DAY_MS  # the few decisions of sessions still running at the horizon are left out
    rows = []
    for lo, hi in buckets(START_MS, end_ms, int(bucket_hours * HOUR_MS)):
        m = decisions.between(lo, hi)
        y = decisions.purchased[m]
        rows.append(
            {
                "hours_from_shift": round((lo - shift_ms) / HOUR_MS, 2),
                "day": day_of_ms(lo).isoformat(),
                "n": int(m.sum()),
                "observed_rate": float(y.mean()) if len(y) else None,
                "best_constant_log_loss": log_loss(np.full(len(y), y.mean()), y) if len(y) else None,
                "online": calibration(decisions.online[m], y),
                "snapshot": calibration(snap[m], y) | {"version": serving.get(day_of_ms(lo).isoformat())},
            }
        )
    per_day = []
    for d in range(days):
        lo = START_MS + d * DAY_MS
        m = decisions.between(lo, lo + DAY_MS)
        y = decisions.purchased[m]
        per_day.append(
            {
                "day": d,
                "date": (first_day + timedelta(days=d)).isoformat(),
                "n": int(m.sum()),
                "observed_rate": float(y.mean()) if len(y) else None,
                "online": auc_summary(decisions.online[m], y) | calibration(decisions.online[m], y),
                "snapshot": auc_summary(snap[m], y) | calibration(snap[m], y),
            }
        )
    return {
        "what": "online intent learner vs nightly XGBoost snapshot on the abrupt scenario (see the docstring)",
        "recovered_after_hours": {m: recovered_after(rows, m, recovered_gap) for m in ("online", "snapshot")},
        "recovered_gap": recovered_gap,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": {"name": "abrupt", "days": days, "users": users, "seed": seed, "shift_at_day": days / 2},
        "events": sim["events"],
        "decisions": len(decisions),
        "dead_letters": int(sum(v for k, v in counts.items() if k.value == "dead_letter")),
        "drift_alarms": {k: v for k, v in processor.counters.items() if k.startswith("drift_alarms.")},
        "serving_snapshot": serving,
        "buckets": rows,
        "days": per_day,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_report(r: dict[str, Any]) -> None:
    print()
    print(
        f"{'h from shift':>12} {'n':>5} {'rate':>6} {'const ll':>8} | {'online':>6} {'gap':>6} {'logloss':>7} |", end=""
    )
    print(f" {'snap':>6} {'gap':>6} {'logloss':>7}  snapshot")
    for b in r["buckets"]:
        o, s = b["online"], b["snapshot"]
        print(
            f"{b['hours_from_shift']:>12.0f} {b['n']:>5} {_fmt(b['observed_rate']):>6}"
            f" {_fmt(b['best_constant_log_loss'], '.4f'):>8} |"
            f" {_fmt(o['mean']):>6} {_fmt(o['gap']):>6} {_fmt(o['log_loss'], '.4f'):>7} |"
            f" {_fmt(s['mean']):>6} {_fmt(s['gap']):>6} {_fmt(s['log_loss'], '.4f'):>7}  {s['version'] or '-'}"
        )
    print()
    print(f"{'day':>3} {'n':>5} {'rate':>6} | {'online AUC [95% CI]':>22} | {'snapshot AUC [95% CI]':>22}  snapshot")
    for d in r["days"]:
        cells = []
        for k in ("online", "snapshot"):
            a = d[k]
            ci = f"[{_fmt(a['lo95'])}, {_fmt(a['hi95'])}]" if a["auc"] is not None else ""
            cells.append(f"{_fmt(a['auc']):>6} {ci:>15}")
        version = r["serving_snapshot"].get(d["date"]) or "-"
        print(f"{d['day']:>3} {d['n']:>5} {_fmt(d['observed_rate']):>6} | {cells[0]} | {cells[1]}  {version}")
    print(
        "\na constant predictor's AUC is 0.5; 'const ll' is the log loss of the best constant (the bucket's own rate)"
    )
    rec = {m: "never" if h is None else f"{h:g} h" for m, h in r["recovered_after_hours"].items()}
    print(f"calibration gap under {r['recovered_gap']} for good from the shift (hour 0) on: {rec}")
    print(f"drift alarms: {r['drift_alarms'] or 'none'}; timings: {r['timings_s']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=8, help="horizon; the shift is at half of it")
    parser.add_argument("--users", type=int, default=25_000, help="simulated shoppers (~40 decisions/day per 1000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--bucket-hours", type=float, default=6.0)
    parser.add_argument("--recovered-gap", type=float, default=0.05, help="calibration gap that counts as recovered")
    parser.add_argument("--workdir", type=Path, default=REPO / ".run/bench/freshness")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/freshness.json")
    args = parser.parse_args(argv)
    if args.days < 4 or args.days % 2:
        parser.error("--days must be even and at least 4 (the shift falls on a midnight, after two full days)")
    logging.basicConfig(level=logging.ERROR)  # the learners' drift alarms are counted in the report instead
    started = time.perf_counter()
    report = run(args.days, args.users, args.seed, args.workdir, args.bucket_hours, args.recovered_gap)
    report["timings_s"]["total_s"] = round(time.perf_counter() - started, 1)
    print_report(report)
    write_results(args.out, report)


if __name__ == "__main__":
    main()
