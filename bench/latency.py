"""Latency through the broker: from an event's append to the clickstream topic to its decision's append.

How (part of ``make bench``, :mod:`bench.benchmark`): the input and decisions topics are created with
``message.timestamp.type=LogAppendTime``, so the broker stamps every record with the time it appended it;
the simulator's shoppers (:func:`stream.simulator.live.run_traffic`, closed loop, wall-clock event times) offer
``rate`` events/s for ``duration_s`` from a process of their own (as a shop's traffic would: sharing the
worker's interpreter, they took its GIL and their garbage went through its collector) while the worker
(:func:`stream.app.worker.run_worker`, the given settings: by default transactions and read_committed; ``make
bench`` also runs it at-least-once) runs in a thread of this one;
afterwards both topics are read back and each decision's append time is matched with its event's. Decisions
in the first ``warmup_s`` (the consumer group's join) are left out. The latency includes polling, processing,
producing (``linger_ms``) and the broker's append; under exactly-once a ``read_committed`` reader also waits
for the transaction's commit marker, which comes after (the batch's commit), and is not in the figure.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import threading
import time
from typing import Any

import numpy as np
import orjson
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.app.settings import Settings
from stream.app.worker import WorkerResult, run_worker
from stream.kafka.topic_files import iter_topic
from stream.simulator.live import run_traffic

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def create_append_time_topics(settings: Settings) -> None:
    """The input and decisions topics, stamped by the broker (the others are left to the worker)."""
    k = settings.kafka
    admin = KafkaAdminClient(**k.client_options())
    try:
        names = (k.clickstream_topic, k.decisions_topic)
        topics = [NewTopic(name, k.partitions, 1, topic_configs=APPEND_TIME) for name in names]
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(topics)
    finally:
        admin.close()


def append_times(settings: Settings, topic: str, key: str) -> dict[str, int]:
    """``body[key]`` -> the record's (append) timestamp, for every committed record of ``topic``."""
    return {orjson.loads(m.value)[key]: m.timestamp for m in iter_topic(settings.kafka, topic)}


def _offer_traffic(settings: Settings, rate: float, users: int, duration_s: float, sent: Any) -> None:
    """The traffic process: closed-loop shoppers for ``duration_s``; the number of events into ``sent``."""
    summary = run_traffic(settings, rate=rate, users=users, duration_s=duration_s, report=lambda line: None)
    sent.value = summary.sent


def bench_latency(
    settings: Settings, rate: float = 1000.0, duration_s: float = 60.0, users: int = 20_000, warmup_s: float = 10.0
) -> dict[str, Any]:
    create_append_time_topics(settings)
    stop = threading.Event()
    result: list[WorkerResult] = []
    worker = threading.Thread(
        target=lambda: result.append(run_worker(settings, stop)), name="bench-worker", daemon=True
    )
    worker.start()
    started_ms = int(time.time() * 1000)
    spawn = multiprocessing.get_context("spawn")
    sent = spawn.Value("q", -1)
    traffic = spawn.Process(
        target=_offer_traffic, args=(settings, rate, users, warmup_s + duration_s, sent), name="bench-traffic"
    )
    try:
        traffic.start()
        traffic.join(timeout=warmup_s + duration_s + 120)
        if traffic.exitcode != 0:
            raise RuntimeError(f"the simulated traffic failed (exit code {traffic.exitcode})")
        time.sleep(2.0)  # the last decisions
    finally:
        if traffic.is_alive():
            traffic.kill()
        stop.set()
        worker.join(timeout=60)
    events = append_times(settings, settings.kafka.clickstream_topic, "event_id")
    decisions = append_times(settings, settings.kafka.decisions_topic, "event_id")
    since = started_ms + int(warmup_s * 1000)
    latencies = sorted(decisions[e] - events[e] for e in decisions if e in events and events[e] >= since)
    if not latencies:
        raise RuntimeError("no decision came back: is the worker consuming?")
    ms = np.asarray(latencies, dtype=float)
    per_batch: dict[str, float] = {}
    if result and result[0].stats.batches:
        batches = result[0].stats.batches
        per_batch = {stage: round(ns / batches / 1e6, 2) for stage, ns in result[0].processor.clock.ns.items()}
    return {
        "what": "append of an event to the clickstream topic -> append of its decision to the decisions topic "
        "(broker LogAppendTime on both), simulator traffic at a steady rate, default worker settings but for "
        "the processing guarantee",
        "processing_guarantee": settings.kafka.processing_guarantee,
        "offered_events_per_s": rate,
        "seconds": duration_s,
        "warmup_s": warmup_s,
        "events_sent": sent.value,
        "decisions_measured": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "worker_batches": result[0].stats.batches if result else None,
        "worker_ms_per_batch_by_stage": per_batch,
    }
