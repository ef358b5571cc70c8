"""``make bench-fleet``: several workers in one group, and restoring a partition's state from its changelog.

Measured here, printed and written to ``.run/bench/fleet.json``:

1. **throughput with one and two workers**: a simulated shop's events, produced once to a 4-partition topic,
   consumed by a fresh consumer group of 1 and then of 2 worker processes (``offerstream run``), alternately
   ``--runs`` times each; each timed from the first committed offset to the last (process start-up excluded),
   with the state changelog written in every batch's transaction. On a machine with fewer free cores than
   workers plus the broker, the second worker buys little: the cores are printed with the figures.
2. **restore time per 100,000 users**: a changelog partition holding ``--users`` users' records (each a real
   user as the state stage writes it, after a dozen events; 5 % with an open session), read back and applied
   to an empty partition state the way a worker that is assigned the partition does
   (:func:`stream.kafka.changelog.read_changelog`); ``--runs`` times, the median.
3. **how far behind the fleet's model a worker runs**: in the two-worker runs, each worker's ``/metrics`` at
   the end: the age of the other's lessons when it folded them in (taken → folded, wall clock: the
   transaction's commit, the next batch boundary) and the policy updates it folded in at once; medians (and the
   lag's p90) over both workers' folds, estimated from the histograms' buckets.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a throw-away local broker (docker/kafka/kafka.sh).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.benchmark import KEEP_EVERYTHING, REPO, broker, exit_on_sigterm, fresh_topics
from bench.machine import machine, write_results
from models.behaviour.state import SessionState, UserState, encode_session, encode_user, record_activity
from models.behaviour.store import session_key, user_key
from stream.app.settings import Settings, load_settings
from stream.engine.partition_state import PartitionState
from stream.kafka.changelog import Change, read_changelog
from stream.kafka.clients import ensure_topics, group_committed_total, make_producer
from stream.kafka.topic_files import produce_files
from stream.simulator import simulate_to_file

PARTITIONS = 4
T0 = 1_767_600_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lesson_lag(port: int) -> dict[str, Any]:
    """From a worker's ``/metrics``: lessons folded in, and the histograms of their age when folded (s) and of
    the policy updates each fold round brought (how far behind the fleet's model the worker was)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return float(samples.get((f"offerstream_{name}", tuple(sorted(labels.items()))), 0.0))

    def buckets(name: str) -> dict[float, float]:
        return {float(dict(labels)["le"]): v for (n, labels), v in samples.items() if n == f"offerstream_{name}_bucket"}

    return {
        "lag_buckets": buckets("lesson_lag_seconds"),
        "behind_buckets": buckets("fleet_behind_updates"),
        "folded": value("lessons_total", outcome="folded"),
    }


def _quantile(q: float, histograms: list[dict[float, float]]) -> float:
    """The ``q`` quantile of summed cumulative histograms, interpolated within its bucket as Prometheus'
    ``histogram_quantile`` does (an estimate: it is as fine as the buckets)."""
    total: dict[float, float] = {}
    for h in histograms:
        for le, count in h.items():
            total[le] = total.get(le, 0.0) + count
    bounds = sorted(total)
    if not bounds or total[bounds[-1]] == 0:
        return float("nan")
    rank = q * total[bounds[-1]]
    below, lower = 0.0, 0.0
    for le in bounds:
        if total[le] >= rank:
            if le == float("inf"):
                return lower
            inside = total[le] - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        below, lower = total[le], le
    return lower


def _fleet_pass(settings: Settings, workers: int, total: int, workdir: Path, tag: str) -> dict[str, Any]:
    """Events/s of ``workers`` worker processes in a fresh group, from the first commit to the last; with
    several, how far behind the fleet's model they ran (their lessons' age when folded, from ``/metrics``)."""
    group = f"{settings.kafka.group_id}-{tag}-{workers}w"
    env = dict(
        os.environ,
        OFFERSTREAM_SEED=str(settings.seed),
        OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers or "",
        OFFERSTREAM_KAFKA__CLICKSTREAM_TOPIC=settings.kafka.clickstream_topic,
        OFFERSTREAM_KAFKA__DECISIONS_TOPIC=settings.kafka.decisions_topic,
        OFFERSTREAM_KAFKA__REWARDS_TOPIC=settings.kafka.rewards_topic,
        OFFERSTREAM_KAFKA__DEAD_LETTER_TOPIC=settings.kafka.dead_letter_topic,
        OFFERSTREAM_KAFKA__GROUP_ID=group,
        OFFERSTREAM_LOG_LEVEL="WARNING",
    )
    ports = [_free_port() for _ in range(workers)]
    measured = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"group_id": group})})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stream", "run"],
            env={
                **env,
                "OFFERSTREAM_STATE_DIR": str(workdir / group / f"w{n}"),
                "OFFERSTREAM_METRICS_PORT": str(ports[n]),
            },
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(workers)
    ]
    try:
        first: float | None = None
        while True:
            done = group_committed_total(measured.kafka) or 0
            now = time.perf_counter()
            if first is None and done > 0:
                first, first_done = now, done
            if done >= total:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker of the {workers}-worker group exited early")
            time.sleep(0.05)
        assert first is not None
        seconds = max(now - first, 1e-9)
        lags = [_lesson_lag(port) for port in ports] if workers > 1 else []
        return {
            "events_per_s": (total - first_done) / seconds,
            "seconds": seconds,
            "lessons_folded": sum(lag["folded"] for lag in lags),
            "lesson_lag_s_median": _quantile(0.5, [lag["lag_buckets"] for lag in lags]),
            "lesson_lag_s_p90": _quantile(0.9, [lag["lag_buckets"] for lag in lags]),
            "behind_updates_median": _quantile(0.5, [lag["behind_buckets"] for lag in lags]),
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=90)


def bench_fleet(events: Path, settings: Settings, runs: int, workdir: Path) -> dict[str, Any]:
    ensure_topics(settings.kafka, configs=KEEP_EVERYTHING)
    total = produce_files(settings.kafka, settings.kafka.clickstream_topic, [events])
    rates: dict[int, list[float]] = {1: [], 2: []}
    lags: list[float] = []
    p90s: list[float] = []
    behind: list[float] = []
    folded: list[float] = []
    for run in range(runs):
        for workers in (1, 2):
            result = _fleet_pass(settings, workers, total, workdir, f"r{run}")
            rates[workers].append(result["events_per_s"])
            if workers == 2:
                lags.append(result["lesson_lag_s_median"])
                p90s.append(result["lesson_lag_s_p90"])
                behind.append(result["behind_updates_median"])
                folded.append(result["lessons_folded"])
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "what": f"{total} events over {PARTITIONS} partitions; a fresh group of N worker processes each run, "
        "timed from the first committed offset to the last; state changelog in every transaction",
        "events": total,
        "partitions": PARTITIONS,
        "runs": runs,
        "one_worker_events_per_s": round(one),
        "two_workers_events_per_s": round(two),
        "two_over_one": round(two / one, 3),
        "all": {str(k): [round(v) for v in vs] for k, vs in rates.items()},
        "lesson_lag": {
            "what": "two workers: each lesson's age (taken → folded in by the other worker, wall clock) and the "
            "policy updates a worker folded in at once (how far behind the fleet's model it ran); per run the "
            "median (and p90) over both workers' folds, estimated from their histograms; the median run",
            "seconds_median": round(statistics.median(lags), 3),
            "seconds_p90": round(statistics.median(p90s), 3),
            "updates_behind_median": round(statistics.median(behind), 1),
            "lessons_folded": [int(f) for f in folded],
            "seconds_all": [round(x, 3) for x in lags],
            "updates_behind_all": [round(x, 1) for x in behind],
        },
    }


def _user(i: int) -> UserState:
    """A user as the state stage leaves it after a dozen events over a few days."""
    user = UserState(f"user-{i:07d}", first_ms=T0, last_ms=T0, decayed_ms=T0, sessions=3)
    for k in range(12):
        ts = T0 + k * 7_200_000
        kind = ("page_view", "product_view", "add_to_cart", "search")[k % 4]
        record_activity(user, kind, ts, 20.0 + k if kind == "product_view" else None)
        user.last_ms = ts
    return user


def _into(state: PartitionState) -> Callable[[int, list[Change]], None]:
    def apply(_partition: int, changes: list[Change]) -> None:
        state.apply(changes)

    return apply


def bench_restore(settings: Settings, users: int, runs: int) -> dict[str, Any]:
    """Fill one changelog partition with ``users`` users (and 5 % open sessions), then time restores of it."""
    topic_settings = settings.kafka.model_copy(update={"partitions": 1})
    ensure_topics(topic_settings)
    topic = topic_settings.state_changelog_topic
    producer = make_producer(topic_settings)
    written = 0
    for i in range(users):
        user = _user(i)
        producer.send(topic, key=user_key(user.user_id), value=encode_user(user), partition=0)
        written += 1
        if i % 20 == 0:
            session = SessionState(f"s-{i}", user.user_id, started_ms=user.last_ms, last_ms=user.last_ms)
            producer.send(topic, key=session_key(session.session_id), value=encode_session(session), partition=0)
            written += 1
    clock = {"watermark_ms": T0, "last_sweep_ms": T0, "last_user_sweep_ms": T0, "dedup_newest": None}
    producer.send(topic, key=b"w:", value=orjson.dumps(clock | {"next_offset": users}), partition=0)
    producer.flush()
    producer.close()
    seconds: list[float] = []
    for _ in range(runs):
        state = PartitionState(0, settings.processing, track_changes=True)
        started = time.perf_counter()
        report = read_changelog(topic_settings, [0], _into(state))
        seconds.append(time.perf_counter() - started)
        assert state.store.user_count == users, (state.store.user_count, users)
        assert report.total == written + 1
    median = statistics.median(seconds)
    return {
        "what": f"one changelog partition: {users} users (a dozen events each), {users // 20} open sessions; "
        "read to its end and applied to an empty partition state (in memory)",
        "users": users,
        "records": written + 1,
        "runs": runs,
        "seconds_median": round(median, 3),
        "seconds_all": [round(s, 3) for s in seconds],
        "seconds_per_100k_users": round(median * 100_000 / users, 3),
    }


def main(argv: list[str] | None = None) -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000, help="users in the restored changelog partition")
    parser.add_argument("--shop-users", type=int, default=4_000, help="simulated shoppers for the fleet runs")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/fleet.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    m = results["machine"]
    print(f"machine: {m['cpu']} × {m['cores']} cores, Python {m['python']}, kafka-python {m['kafka-python']}")
    with tempfile.TemporaryDirectory(prefix="offerstream-fleet-") as tmp:
        workdir = Path(tmp)
        bootstrap, broker_env = broker(workdir)
        base = load_settings(env={}, overrides={"seed": 1, "kafka": {"bootstrap_servers": bootstrap}})
        settings = fresh_topics(base, "fleet", partitions=PARTITIONS)
        try:
            restore_settings = fresh_topics(base, "restore")
            r = results["restore"] = bench_restore(restore_settings, args.users, args.runs)
            print(
                f"restore from the changelog: {r['users']:,} users ({r['records']:,} records) in "
                f"{r['seconds_median']:.2f} s (median of {r['runs']}; all {r['seconds_all']}): "
                f"{r['seconds_per_100k_users']:.2f} s per 100,000 users"
            )
            events = workdir / "events.jsonl"
            sim = simulate_to_file("stationary", days=args.days, users=args.shop_users, seed=1, out=events)
            results["input"] = {"scenario": "stationary", "days": args.days, "users": args.shop_users, **sim}
            f = results["fleet"] = bench_fleet(events, settings, args.runs, workdir)
            print(
                f"fleet ({f['events']} events, {f['partitions']} partitions, {f['runs']} alternating runs, "
                f"{m['cores']} cores shared with the broker): one worker {f['one_worker_events_per_s']} events/s, "
                f"two workers {f['two_workers_events_per_s']} events/s ({f['two_over_one']}×; all {f['all']})"
            )
            lag = f["lesson_lag"]
            print(
                f"one brain, two workers: a lesson was {lag['seconds_median']:.2f} s old when the other worker "
                f"folded it in (p90 {lag['seconds_p90']:.2f} s), {lag['updates_behind_median']:.0f} policy updates "
                f"behind the fleet's model (medians of the folds, median run of {f['runs']}; all "
                f"{lag['seconds_all']} s, {lag['updates_behind_all']} updates; lessons folded {lag['lessons_folded']})"
            )
        finally:
            if broker_env is not None:
                subprocess.run(
                    ["bash", str(REPO / "docker/kafka/kafka.sh"), "down"], env=broker_env, capture_output=True
                )
    write_results(args.out, results)


if __name__ == "__main__":
    main()
