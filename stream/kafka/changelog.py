"""Reading the state changelog back: a partition's state rebuilt from Kafka, on whichever worker owns it now.

The worker writes each batch's state changes to the changelog topic (compacted, one partition per clickstream
partition, see :func:`stream.kafka.clients.ensure_changelog`) in the batch's transaction, so the committed
changelog is always exactly the state at the group's committed input offsets. :func:`read_changelog` reads the
committed records of the given changelog partitions from their beginning to their end (the last stable offset:
``read_committed``) and hands them, in log order and in chunks, to ``apply``.

*Committed* is not *visible everywhere at once*. A transaction's commit returns to its producer once the
coordinator has logged it; the markers that make its records readable are then written to each partition it
touched, the group's offsets (``__consumer_offsets``) among them, with no order between partitions. A new owner of
a partition can therefore read the group's committed offset *with* the previous owner's last batch
(``require_stable`` waits for that marker only) and the changelog's end *without* it: the state would silently miss
that batch. So the reader is told when a partition's state is current (``reached``: its state reflects the
committed input offset) and, at the end it first read, waits for the rest (reading the end again) for up to
``settle_s`` before giving up on it (the changelog really is behind: lost, or written by a worker without
changelogs; the caller warns). Records a poll brings past the end first read (committed meanwhile) are not
applied, and the partition is sought back to that end, so that reading on takes them rather than skipping them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.kafka.errors import StateTopicUnreadable
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

Change = tuple[bytes, bytes | None]
PROGRESS_EVERY_S = 5.0
SETTLE_S = 10.0  # a committed transaction's markers land within milliseconds; 10 s is kafka's transaction timeout


@dataclass(slots=True)
class RestoreReport:
    """What a restore read: records per partition, and how long it took."""

    records: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    waited: dict[int, float] = field(default_factory=dict)  # seconds spent at the end waiting for ``reached``

    @property
    def total(self) -> int:
        return sum(self.records.values())


def read_changelog(
    settings: KafkaSettings,
    partitions: Sequence[int],
    apply: Callable[[int, list[Change]], None],
    stall_s: float = 60.0,
    max_records: int = 10_000,
    reached: Callable[[int], bool] | None = None,
    settle_s: float | None = None,
) -> RestoreReport:
    """Read the committed records of the changelog ``partitions`` from their beginning to their end, calling
    ``apply(partition, changes)`` with each chunk in log order; raises :class:`StateTopicUnreadable` when no
    record arrives for ``stall_s`` while some are still to be read. With ``reached(partition)``, a partition
    whose state is not yet current at its end is read on as its end moves, for up to ``settle_s`` (see the
    module's doc; None: :data:`SETTLE_S`)."""
    settle_s = SETTLE_S if settle_s is None else settle_s
    topic = settings.state_changelog_topic
    report = RestoreReport(records=dict.fromkeys(partitions, 0))
    if not partitions:
        return report
    started = time.monotonic()
    consumer = KafkaConsumer(
        **settings.client_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=max_records,
        fetch_max_bytes=settings.fetch_max_bytes,
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        remaining = {tp: end for tp, end in ends.items() if consumer.position(tp) < end}
        settling: dict[TopicPartition, float] = {}  # at its end, not yet current: since when
        news = progress = time.monotonic()

        def settle(done: list[TopicPartition]) -> None:
            """Partitions at their end: finished when current, else read on up to their new end (a while)."""
            for tp in done:
                remaining.pop(tp, None)
                if reached is None or reached(tp.partition):
                    if tp in settling:
                        report.waited[tp.partition] = time.monotonic() - settling.pop(tp)
                    continue
                since = settling.setdefault(tp, time.monotonic())
                if time.monotonic() - since >= settle_s:
                    report.waited[tp.partition] = time.monotonic() - settling.pop(tp)
                    continue
                remaining[tp] = ends[tp] = consumer.end_offsets([tp])[tp]  # the markers may have landed since

        settle([tp for tp in tps if tp not in remaining])
        while remaining:
            polled = consumer.poll(timeout_ms=500, max_records=max_records)
            for tp in sorted(polled, key=lambda t: t.partition):
                # a partition read on past its first end takes all it gets (its end moved as the poll ran)
                messages = polled[tp]
                if tp not in settling and messages[-1].offset >= ends[tp]:
                    # committed after its end was taken: read again if the state turns out to need them
                    messages = [m for m in messages if m.offset < ends[tp]]
                    consumer.seek(tp, ends[tp])
                if messages:
                    apply(tp.partition, [(m.key, m.value) for m in messages])
                    report.records[tp.partition] += len(messages)
                    news = time.monotonic()
            settle([tp for tp in remaining if consumer.position(tp) >= remaining[tp]])
            now = time.monotonic()
            stalled = sorted(tp.partition for tp in remaining if tp not in settling)
            if stalled and now - news > stall_s:
                raise StateTopicUnreadable(f"{topic}: no record for {stall_s:.0f} s with {stalled} unfinished")
            if remaining and now - progress >= PROGRESS_EVERY_S:
                progress = now
                log.info(
                    "restoring from %s: %d records read, partitions %s still reading",
                    topic,
                    report.total,
                    sorted(tp.partition for tp in remaining),
                )
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report
