"""Closed-loop simulated traffic against a running worker, through the broker.

The simulator's shoppers send their events to the clickstream topic at a steady rate, stamped with the
wall clock (the clock is injectable); a background consumer reads the decisions topic, and the offer a session
was shown changes what that shopper does next. A session waiting for a decision pauses (other sessions go on)
until the decision arrives or ``decision_timeout_s`` passes, after which the shopper behaves as if shown
nothing. The rewards topic feeds the live summary; with several workers, it also shows which input partitions
each worker decided for and at what rate (from the decisions' ``offerstream.worker`` and
``offerstream.partition`` headers).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer

from stream.app.settings import Settings
from stream.kafka.clients import make_producer
from stream.simulator import Simulation

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TrafficSummary:
    started: float
    sent: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    rewards: int = 0
    conversions: int = 0
    reward_total: float = 0.0
    timeouts: int = 0
    by_worker: Counter[str] = field(default_factory=Counter)  # decisions per worker
    first_seen: dict[str, float] = field(default_factory=dict)  # when each worker's first decision came
    last_seen: dict[tuple[str, int], float] = field(default_factory=dict)  # (worker, input partition) -> when

    def saw(self, worker: str | None, partition: int | None, now: float) -> None:
        if worker is None:
            return
        self.by_worker[worker] += 1
        self.first_seen.setdefault(worker, now)
        if partition is not None:
            self.last_seen[(worker, partition)] = now

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        offers = " ".join(f"{k}={v}" for k, v in sorted(self.decisions.items())) or "-"
        text = (
            f"{elapsed:6.0f}s events={self.sent} ({self.sent / elapsed:.0f}/s) "
            f"decisions={sum(self.decisions.values())} [{offers}] "
            f"resolved={self.rewards} purchases={self.conversions} reward={self.reward_total:.2f}"
        )
        return text + self._workers_line(now)

    def _workers_line(self, now: float, recent_s: float = 10.0) -> str:
        """Each worker: the input partitions it decided for in the last ``recent_s`` and its decisions per second
        since its first one."""
        parts = []
        for worker in sorted(self.by_worker):
            partitions = sorted(p for (w, p), at in self.last_seen.items() if w == worker and now - at <= recent_s)
            rate = self.by_worker[worker] / max(now - self.first_seen[worker], 1.0)
            parts.append(f"{worker}[{','.join(map(str, partitions))}] {rate:.1f}/s")
        return f" | workers: {'; '.join(parts)}" if parts else ""


Message = tuple[str, dict[str, Any], dict[str, bytes]]  # kind, body, headers


class _OutputReader(threading.Thread):
    """Reads the decisions and rewards topics from their end, handing messages to the driver."""

    def __init__(self, settings: Settings, inbox: queue.Queue[Message]) -> None:
        super().__init__(name="offerstream-traffic-reader", daemon=True)
        self.inbox = inbox
        self.halt = threading.Event()
        self.ready = threading.Event()
        k = settings.kafka
        self.topics = {k.decisions_topic: "decision", k.rewards_topic: "reward"}
        self.consumer = KafkaConsumer(
            *self.topics,
            **k.client_options(),
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            isolation_level="read_committed",  # decisions of aborted transactions are made again
        )

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                polled = self.consumer.poll(timeout_ms=200)
                if self.consumer.assignment():
                    self.ready.set()
                for tp, messages in polled.items():
                    for m in messages:
                        try:
                            headers = dict(m.headers or ())
                            self.inbox.put((self.topics[tp.topic], orjson.loads(m.value), headers))
                        except orjson.JSONDecodeError:
                            log.warning("unreadable output at %s[%d]@%d", tp.topic, tp.partition, m.offset)
        finally:
            self.consumer.close()


def run_traffic(
    settings: Settings,
    rate: float,
    users: int,
    scenario: str = "stationary",
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    decision_timeout_s: float = 2.0,
    report_every_s: float = 2.0,
    report: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
) -> TrafficSummary:
    """Send closed-loop traffic at ``rate`` events/s until ``duration_s`` passes or ``stop`` is set."""
    stop = stop or threading.Event()
    start = datetime.fromtimestamp(clock(), tz=UTC)
    sim = Simulation(scenario=scenario, days=3650, users=users, seed=settings.seed, start=start, closed_loop=True)
    # The shoppers come back run after run (same seed, same users), but each run's events and sessions are new:
    # without this prefix a second run within the dedup window would send only duplicates.
    run = f"r{int(start.timestamp() * 1000):x}"
    inbox: queue.Queue[Message] = queue.Queue()
    reader = _OutputReader(settings, inbox)
    reader.start()
    reader.ready.wait(timeout=15)
    producer = make_producer(settings.kafka)
    summary = TrafficSummary(started=clock())
    awaiting: dict[str, float] = {}
    next_report = summary.started + report_every_s
    try:
        while not stop.is_set():
            now = clock()
            if duration_s is not None and now - summary.started >= duration_s:
                break
            _drain(inbox, sim, awaiting, summary, now, run)
            for event_id, sent_at in list(awaiting.items()):
                if now - sent_at > decision_timeout_s:
                    del awaiting[event_id]
                    sim.respond(event_id, None, None)
                    summary.timeouts += 1
            due = int((now - summary.started) * rate) - summary.sent
            for _ in range(max(0, due)):
                event = sim.next_event()
                if event is None:
                    break
                ts = int(clock() * 1000)
                sent = dict(event, ts=ts, event_id=f"{run}-{event['event_id']}")
                if event.get("session_id"):
                    sent["session_id"] = f"{run}-{event['session_id']}"
                producer.send(
                    settings.kafka.clickstream_topic,
                    value=orjson.dumps(sent),
                    key=event["user_id"].encode(),
                    timestamp_ms=ts,
                )
                summary.sent += 1
                if sim.awaiting_response(event["event_id"]):
                    awaiting[event["event_id"]] = clock()
            if now >= next_report:
                report(summary.line(now))
                next_report = now + report_every_s
            stop.wait(0.01)
    finally:
        producer.flush()
        producer.close()
        reader.halt.set()
        reader.join(timeout=5)
    report(summary.line(clock()))
    return summary


def _drain(
    inbox: queue.Queue[Message],
    sim: Simulation,
    awaiting: dict[str, float],
    summary: TrafficSummary,
    now: float,
    run: str,
) -> None:
    while True:
        try:
            kind, body, headers = inbox.get_nowait()
        except queue.Empty:
            return
        if kind == "decision":
            event_id = str(body.get("event_id", ""))
            if not event_id.startswith(f"{run}-"):
                continue  # another run's (or another producer's) decision
            summary.decisions[body["offer"]] += 1
            worker, partition = headers.get("offerstream.worker"), headers.get("offerstream.partition")
            summary.saw(
                worker.decode(errors="replace") if worker else None,
                int(partition) if partition and partition.isdigit() else None,
                now,
            )
            own = event_id[len(run) + 1 :]
            awaiting.pop(own, None)
            sim.respond(own, body["offer"], body["decision_id"])
        else:
            summary.rewards += 1
            summary.conversions += int(body["purchased"])
            summary.reward_total += float(body["reward"])
