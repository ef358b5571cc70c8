"""``make bench``: replay throughput, and the worker beside a raw kafka-python pass-through, in one run.

Measured here, printed and written to ``.run/bench/results.json``:
1. **replay**: simulated events (file) → the full processing core (River learners, the nightly XGBoost snapshot,
   the default linear Thompson sampling policy) → files; events/s over ``--runs`` runs, and where the time goes:
   µs per event in each stage of :mod:`stream.engine.stage_clock` (the worker's own stage clock; medians over the runs).
   The snapshot is trained first, untimed: one replay with the archive on, then the nightly retrain as of the
   day before the last into a throw-away registry, whose promoted snapshot every timed run scores with.
2. **broker**: the same events produced once to an input topic; then, alternately and ``--runs`` times each,
   (a) a raw kafka-python consume → produce pass-through (no parsing, same batch and producer settings,
   flush + commit per poll) and (b) the offerstream worker (fresh consumer group each run), each timed from
   start to the last input committed. The ratio worker/raw is what matters on a noisy machine.
3. **naive**: the same replay as 1, one record per batch with a matrix inverse per Thompson draw
   (:mod:`bench.naive`), once: the speed-up of ours over it.
4. **latency**: at ``--latency-rate`` events/s offered by the simulator for ``--latency-seconds``, event
   append → decision append on the broker (:mod:`bench.latency`): p50, p99, max; once with the default
   exactly-once worker (a transaction per poll), once with ``kafka.processing_guarantee = "at-least-once"``
   (flush, then commit the offsets), so that the price of the transaction is visible.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a throw-away local broker (docker/kafka/kafka.sh).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata

from bench.latency import bench_latency
from bench.machine import machine, write_results
from bench.naive import naive_replay
from models.history.archive import archive_days
from models.snapshots.retrain import retrain_nightly
from stream.app.replay import replay_files
from stream.app.settings import Settings, load_settings
from stream.app.worker import run_worker
from stream.engine.pipeline import PipelineStats
from stream.engine.stage_clock import STAGES
from stream.kafka.clients import ensure_topics, make_producer
from stream.kafka.topic_files import produce_files
from stream.simulator import simulate_to_file

REPO = Path(__file__).resolve().parents[1]


def snapshot_registry(events: Path, seed: int, workdir: Path) -> tuple[Path, str | None]:
    """Replay ``events`` once with the archive on and retrain as of the day before the last: the registry the
    timed replays load their snapshot from, and the promoted version (None when the retrain promoted nothing)."""
    archive, registry = workdir / "archive", workdir / "registry"
    settings = load_settings(
        env={}, overrides={"seed": seed, "models": {"archive": str(archive), "archive_writer_id": "bench"}}
    )
    replay_files([events], settings, workdir / "warmup-decisions.jsonl", workdir / "warmup-dead.jsonl")
    report = retrain_nightly(
        archive,
        registry,
        archive_days(archive, "events")[-2],
        settings.models,
        settings.processing,
        settings.processing.offers.terms(),
        seed,
    )
    return registry, report["version"] if report["gate"]["promote"] else None


def bench_naive(events: Path, settings: Settings, workdir: Path, ours_per_s: float) -> dict[str, Any]:
    """One run of the naive pipeline (:mod:`bench.naive`) on the same events and snapshot."""
    core, stats = naive_replay(events, settings, workdir)
    rate = stats.records / stats.seconds
    return {
        "what": "the same core one record per batch (single-row snapshot scoring), linear TS through a d x d "
        "inverse and d-dimensional draws per decision",
        "events": stats.records,
        "events_per_s": round(rate),
        "us_per_event_by_stage": {stage: round(ns / stats.records / 1000, 2) for stage, ns in core.clock.ns.items()},
        "speedup_ours_over_naive": round(ours_per_s / rate, 2),
    }


def bench_replay(events: Path, settings: Settings, runs: int, workdir: Path) -> dict[str, Any]:
    rates = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for i in range(runs):
        core, stats, counts = replay_files(
            [events], settings, workdir / f"d{i}.jsonl", workdir / f"x{i}.jsonl", workdir / f"r{i}.jsonl"
        )
        rates.append(stats.records / stats.seconds)
        for stage, ns in core.clock.ns.items():
            stages[stage].append(ns / stats.records / 1000)
    per_stage = {stage: round(statistics.median(us), 2) for stage, us in stages.items()}
    return {
        "what": "file source -> parse/validate -> state and features -> snapshot scoring -> online learners -> "
        "linear Thompson sampling -> rewards -> file sinks",
        "events": stats.records,
        "decisions": counts["decision"],  # type: ignore[index]
        "snapshot": core.model_snapshot.version if core.model_snapshot is not None else None,
        "runs": runs,
        "events_per_s": {
            "median": round(statistics.median(rates)),
            "min": round(min(rates)),
            "max": round(max(rates)),
        },
        "us_per_event_by_stage": per_stage,
        "us_per_event_timed": round(sum(per_stage.values()), 2),
        "us_per_event_wall": round(1e6 / statistics.median(rates), 2),
    }


def _raw_pass_through(settings: Settings, total: int) -> float:
    """Consume the input topic and produce every value unchanged to the decisions topic; seconds taken."""
    k = settings.kafka
    consumer = KafkaConsumer(
        k.clickstream_topic,
        **k.client_options(),
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=k.max_poll_records,
        fetch_max_bytes=k.fetch_max_bytes,
    )
    producer = make_producer(k)
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            polled = consumer.poll(timeout_ms=k.poll_timeout_ms, max_records=k.max_poll_records)
            offsets = {}
            for tp, messages in polled.items():
                for m in messages:
                    producer.send(k.decisions_topic, value=m.value, key=m.key)
                offsets[tp] = OffsetAndMetadata(messages[-1].offset + 1, "", -1)
                seen += len(messages)
            if offsets:
                producer.flush()
                consumer.commit(offsets)
        return time.perf_counter() - started
    finally:
        producer.close()
        consumer.close()


def _worker_pass(settings: Settings, total: int) -> tuple[float, int]:
    group = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"group_id": f"bench-{uuid.uuid4().hex[:8]}"})}
    )
    stop = threading.Event()

    def until_done(stats: PipelineStats) -> None:
        if stats.records >= total:
            stop.set()

    started = time.perf_counter()
    result = run_worker(group, stop, on_batch=until_done, create_topics=False)
    return time.perf_counter() - started, result.stats.outputs


# The recording's events are stamped with their (simulated, months old) times: a broker's time retention would
# delete them mid-run, and the worker pass would wait for ever for records that are gone.
KEEP_EVERYTHING = {"retention.ms": "-1"}


def bench_broker(events: Path, settings: Settings, runs: int) -> dict[str, Any]:
    ensure_topics(settings.kafka, configs=KEEP_EVERYTHING)
    total = produce_files(settings.kafka, settings.kafka.clickstream_topic, [events])
    raw, ours = [], []
    outputs = 0
    for _ in range(runs):
        raw.append(total / _raw_pass_through(settings, total))
        seconds, outputs = _worker_pass(settings, total)
        ours.append(total / seconds)
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    return {
        "what": "input topic -> consumer group -> (raw: nothing | worker: full core) -> producer (acks=all), "
        "flush + commit per poll batch; alternating runs, fresh group each",
        "events": total,
        "partitions": settings.kafka.partitions,
        "runs": runs,
        "raw_events_per_s": round(statistics.median(raw)),
        "worker_events_per_s": round(statistics.median(ours)),
        "raw_messages_out": total,
        "worker_messages_out": outputs,
        "ratio_worker_over_raw": {
            "median": round(statistics.median(ratios), 3),
            "all": [round(r, 3) for r in ratios],
        },
    }


def fresh_topics(settings: Settings, prefix: str, **update: object) -> Settings:
    """``settings`` with throw-away topics and group (``<prefix><tag>.in`` …, a random tag), so that a run never
    reads what an earlier one left on a broker it was given."""
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    topics = {
        "clickstream_topic": f"{name}.in",
        "decisions_topic": f"{name}.out",
        "rewards_topic": f"{name}.rewards",
        "dead_letter_topic": f"{name}.dead",
        "group_id": f"{name}-worker",
    }
    return _with_kafka(settings, **topics, **update)


def _with_kafka(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=update)})


def _print_latency(label: str, lat: dict[str, Any]) -> None:
    print(
        f"latency, {label}, at {lat['offered_events_per_s']:g} events/s offered by the simulator "
        f"({lat['seconds']:g} s after {lat['warmup_s']:g} s of warm-up, {lat['decisions_measured']} decisions): "
        f"event append → decision append p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, "
        f"max {lat['max_ms']:.0f} ms"
    )
    print(
        f"  the worker's {lat['worker_batches']} batches, ms per batch by stage: "
        + ", ".join(f"{k} {v:.2f}" for k, v in lat["worker_ms_per_batch_by_stage"].items())
    )


def broker(workdir: Path) -> tuple[str, dict[str, str] | None]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        return given, None
    env = dict(
        os.environ,
        KAFKA_DATA_DIR=str(workdir / "kafka"),
        KAFKA_PORT=os.environ.get("BENCH_KAFKA_PORT", "29492"),
    )
    out = subprocess.run(
        ["bash", str(REPO / "docker/kafka/kafka.sh"), "up"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1].split("=", 1)[1], env


def exit_on_sigterm() -> None:
    """Make SIGTERM (a killed ``make bench``) unwind like Ctrl-C, so that ``finally`` stops the throw-away
    broker: by default Python dies on it at once, and the broker it started stayed up, holding the port the
    next run wants."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4000, help="simulated shoppers (events scale with it)")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/results.json")
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--latency-rate", type=float, default=1000.0, help="events/s offered for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="measured seconds of the latency run")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="offerstream-bench-") as tmp:
        workdir = Path(tmp)
        events = workdir / "events.jsonl"
        sim = simulate_to_file("stationary", days=args.days, users=args.users, seed=1, out=events)
        results["input"] = {
            "scenario": "stationary",
            "days": args.days,
            "users": args.users,
            "events": sim["events"],
        }
        registry, snapshot = snapshot_registry(events, 1, workdir)
        if snapshot is None:
            print("warning: the retrain promoted no snapshot; the replay runs without snapshot scoring")
        settings = load_settings(env={}, overrides={"seed": 1, "models": {"registry": str(registry)}})
        print(
            f"machine: {results['machine']['cpu']} × {results['machine']['cores']} cores, Python "
            f"{results['machine']['python']}, kafka-python {results['machine']['kafka-python']}"
        )
        print(f"input: {sim['events']} simulated events ({args.users} users × {args.days} days, stationary)")
        results["replay"] = bench_replay(events, settings, args.runs, workdir)
        replay = results["replay"]
        r = replay["events_per_s"]
        print(
            f"replay (full core, snapshot {replay['snapshot']}, file→file, {args.runs} runs): median "
            f"{r['median']} events/s (min {r['min']}, max {r['max']}), {replay['decisions']} decisions"
        )
        print("  µs per event by stage (median of the runs):")
        for stage, us in replay["us_per_event_by_stage"].items():
            print(f"    {stage:<9} {us:8.2f}")
        print(f"    {'timed':<9} {replay['us_per_event_timed']:8.2f}   (wall {replay['us_per_event_wall']:.2f})")
        naive = results["naive"] = bench_naive(events, settings, workdir, r["median"])
        print(
            f"naive pipeline (one record per batch, single-row snapshot scoring, a matrix inverse per Thompson "
            f"draw; 1 run): {naive['events_per_s']} events/s; ours is {naive['speedup_ours_over_naive']}× faster"
        )
        print(
            "  µs per event by stage, naive: "
            + ", ".join(f"{k} {v:.2f}" for k, v in naive["us_per_event_by_stage"].items())
        )
        if not args.skip_broker:
            bootstrap, broker_env = broker(workdir)
            overrides = {
                "seed": 1,
                "kafka": {"bootstrap_servers": bootstrap},
                "state_dir": str(workdir / "state"),
                "models": {"registry": str(registry)},  # the worker scores with the same snapshot
            }
            broker_settings = fresh_topics(load_settings(env={}, overrides=overrides), "bench")
            try:
                results["broker"] = bench_broker(events, broker_settings, args.runs)
                results["latency"] = bench_latency(
                    fresh_topics(broker_settings, "lat"), args.latency_rate, args.latency_seconds
                )
                at_least_once = _with_kafka(broker_settings, processing_guarantee="at-least-once")
                results["latency_at_least_once"] = bench_latency(
                    fresh_topics(at_least_once, "alo"), args.latency_rate, args.latency_seconds
                )
            finally:
                if broker_env is not None:
                    subprocess.run(
                        ["bash", str(REPO / "docker/kafka/kafka.sh"), "down"],
                        env=broker_env,
                        capture_output=True,
                    )
            b = results["broker"]
            ratio = b["ratio_worker_over_raw"]
            print(
                f"broker ({b['events']} events, {b['partitions']} partitions, {args.runs} alternating runs): "
                f"raw kafka-python pass-through {b['raw_events_per_s']} events/s, "
                f"worker {b['worker_events_per_s']} events/s, "
                f"ratio worker/raw {ratio['median']} (all {ratio['all']})"
            )
            _print_latency("exactly-once (default)", results["latency"])
            _print_latency("at-least-once", results["latency_at_least_once"])
            print(
                f"  note: raw writes every input message ({b['raw_messages_out']}); the worker writes decisions, "
                f"rewards and its partitions' state changes ({b['worker_messages_out']} messages)"
            )
    write_results(args.out, results)


if __name__ == "__main__":
    main()
