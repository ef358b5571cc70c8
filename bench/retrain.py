"""``make bench-retrain``: the nightly retrain on a generated archive of millions of events, scratch and warm.

1. **Archive** (generated once, cached under ``.run/bench/``): the simulator runs ``--days`` days for
   ``--users`` shoppers in closed loop with a seeded uniform logging policy (propensity 1/5 for each of the
   five default offers, so the price model has honest logs), and every event and decision goes straight into
   the archive with :class:`models.history.archive.ArchiveWriter` — the format the worker writes.
2. **Scratch**: ``offerstream retrain --mode scratch`` as of the day before the last (so that the last day is
   new to it), into an empty registry: it becomes the champion.
3. **Warm vs scratch**: as of the last day, ``--mode warm`` (continue the champion on the one new day) and
   ``--mode scratch``, each in its own process, so each process's peak RSS is its own.

Each retrain runs as a child process of ``python -m stream``; wall time, peak RSS (the child's
``ru_maxrss``) and the rows sampled per tier come from its JSON report. Printed, and written to
``.run/bench/retrain.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from bandits.offers import default_catalogue
from bench.machine import machine, write_results
from models.history.archive import ArchiveWriter, archive_days
from stream.simulator import Simulation
from stream.simulator.in_process_loop import closed_loop_run

REPO = Path(__file__).resolve().parents[1]


def generate_archive(root: Path, days: int, users: int, seed: int) -> dict[str, Any]:
    """Simulate ``days`` × ``users`` in closed loop with a uniform logging policy, straight into an archive."""
    offers = default_catalogue()
    names = [o.name for o in offers]
    terms = {o.name: {"share": o.share, "flat_fee": o.flat_fee} for o in offers}
    rng = random.Random(seed)
    sim = Simulation(scenario="seasonal", days=days, users=users, seed=seed, closed_loop=True)
    started = time.perf_counter()
    with ArchiveWriter(root, "bench") as writer:
        counts = {"events": 0, "decisions": 0}

        def decide(ev: dict[str, Any]) -> tuple[str, str] | None:
            writer.append("events", ev, ev["ts"])
            counts["events"] += 1
            if counts["events"] % 200_000 == 0:
                writer.flush()
                print(f"  generated {counts['events']:,} events", flush=True)
            if not sim.awaiting_response(ev["event_id"]):
                return None
            offer = rng.choice(names)
            decision_id = "d-" + ev["event_id"]
            writer.append(
                "decisions",
                {
                    "decision_id": decision_id,
                    "event_id": ev["event_id"],
                    "user_id": ev["user_id"],
                    "session_id": ev["session_id"],
                    "ts_ms": ev["ts"],
                    "offer": offer,
                    "offer_terms": terms[offer],
                    "propensity": 1 / len(names),
                    "policy": "uniform",
                },
                ev["ts"],
            )
            counts["decisions"] += 1
            return offer, decision_id

        closed_loop_run(sim, decide)
    return counts | {"seconds": round(time.perf_counter() - started, 1)}


def run_retrain(archive: Path, registry: Path, as_of: date, mode: str, seed: int, threads: int) -> dict[str, Any]:
    """One retrain in a child process; its JSON report plus the child's wall time and peak RSS."""
    cmd = [sys.executable, "-m", "stream", "retrain", "--archive", str(archive), "--registry", str(registry)]
    cmd += ["--as-of", as_of.isoformat(), "--mode", mode, "--seed", str(seed), "--threads", str(threads)]
    cmd += ["--no-compare", "--json", "--log-level", "WARNING"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"retrain failed ({proc.returncode}):\n{err.read().decode()[-3000:]}")
        report = orjson.loads(out.read())
    return {
        "mode": mode,
        "as_of": as_of.isoformat(),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "peak_rss_mb_self_reported": report["compute"]["peak_rss_mb"],
        "events_replayed": report["archive"]["events_replayed"],
        "sample": report["sample"],
        "rows": {name: m.get("rows_sampled") for name, m in report["models"].items()},
        "train": {name: m.get("modes", {}).get(mode) for name, m in report["models"].items()},
        "gate": report["gate"]["promote"],
        "version": report["version"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument(
        "--users",
        type=int,
        default=13_500,
        help="simulated shoppers (about 3.8 events per shopper and day: 9.2M events)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="XGBoost threads (0: all cores)")
    parser.add_argument("--workdir", type=Path, default=REPO / ".run/bench/retrain")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/retrain.json")
    args = parser.parse_args(argv)

    archive = args.workdir / f"archive-{args.days}d-{args.users}u-s{args.seed}"
    marker = archive / "COMPLETE.json"
    if marker.is_file():
        generated = orjson.loads(marker.read_bytes())
        print(f"archive: reusing {archive} ({generated['events']:,} events, {generated['decisions']:,} decisions)")
    else:
        shutil.rmtree(archive, ignore_errors=True)
        print(f"archive: simulating {args.days} days × {args.users:,} shoppers into {archive} ...", flush=True)
        generated = generate_archive(archive, args.days, args.users, args.seed)
        marker.write_bytes(orjson.dumps(generated))
        print(
            f"archive: {generated['events']:,} events, {generated['decisions']:,} decisions in {generated['seconds']} s"
        )
    days = archive_days(archive, "events")
    last = days[-2]  # the last partition holds the simulation's final hours: its sessions are still open
    size_mb = sum(p.stat().st_size for p in archive.rglob("*.gz")) / 2**20
    registry = args.workdir / "registry"
    shutil.rmtree(registry, ignore_errors=True)
    print(f"archive: {len(days)} days {days[0]} .. {last}, {size_mb:.0f} MB gzip on disk")

    champion = run_retrain(archive, registry, last - timedelta(days=1), "scratch", args.seed, args.threads)
    _print("champion (scratch, as of the day before)", champion)
    warm = run_retrain(archive, registry, last, "warm", args.seed, args.threads)
    _print("warm (continue the champion on the new day)", warm)
    registry_scratch = args.workdir / "registry-scratch"
    shutil.rmtree(registry_scratch, ignore_errors=True)
    shutil.copytree(registry, registry_scratch)
    scratch = run_retrain(archive, registry_scratch, last, "scratch", args.seed, args.threads)
    _print("scratch (from nothing, on the whole sample)", scratch)
    ratio = scratch["wall_s"] / warm["wall_s"] if warm["wall_s"] else None
    print(f"scratch / warm wall time: {ratio:.2f}" if ratio else "")
    results = {
        "what": "offerstream retrain as a child process on a generated archive; wall time and child peak RSS",
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "archive": {"days": len(days), "users": args.users, "seed": args.seed, "size_mb": round(size_mb, 1)}
        | generated,
        "first_day_of_archive": days[0].isoformat(),
        "runs": {"champion": champion, "warm": warm, "scratch": scratch},
        "scratch_over_warm_wall": round(ratio, 2) if ratio else None,
    }
    write_results(args.out, results)


def _print(title: str, r: dict[str, Any]) -> None:
    tiers = ", ".join(
        f"{t['min_age_days']}-{t['max_age_days']}d {t['sampled']:,}/{t['available']:,}" for t in r["sample"]
    )
    print(f"{title}: {r['wall_s']} s wall, peak RSS {r['peak_rss_mb']} MB, {r['events_replayed']:,} events replayed")
    print(f"  sessions sampled/available per tier: {tiers}")
    for name, t in r["train"].items():
        if t:
            auc = t["holdout"].get("auc")
            print(f"  {name}: {t['rows']:,} rows trained, {t['cpu_s']} s CPU, held-out AUC {auc}")
    print(f"  snapshot {r['version']}, {'promoted' if r['gate'] else 'not promoted'}")


if __name__ == "__main__":
    main()
