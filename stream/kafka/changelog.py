"""Reading the state changelog back: a partition's state rebuilt from Kafka, on whichever worker owns it now.

The worker writes each batch's state changes to the changelog topic (compacted, one partition per clickstream
partition, see :func:`stream.kafka.clients.ensure_changelog`) in the batch's transaction, so the committed
changelog is always exactly the state at the group's committed input offsets. :func:`read_changelog` reads the
committed records of the given changelog partitions from their beginning to their end (the last stable offset:
``read_committed``) and hands them, in log order and in chunks, to ``apply``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.kafka.errors import ChangelogUnreadable
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

Change = tuple[bytes, bytes | None]
PROGRESS_EVERY_S = 5.0


@dataclass(slots=True)
class RestoreReport:
    """What a restore read: records per partition, and how long it took."""

    records: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.records.values())


def read_changelog(
    settings: KafkaSettings,
    partitions: Sequence[int],
    apply: Callable[[int, list[Change]], None],
    stall_s: float = 60.0,
    max_records: int = 10_000,
) -> RestoreReport:
    """Read the committed records of the changelog ``partitions`` from their beginning to their end, calling
    ``apply(partition, changes)`` with each chunk in log order; raises :class:`ChangelogUnreadable` when no
    record arrives for ``stall_s`` while some are still to be read."""
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
        news = progress = time.monotonic()
        while remaining:
            polled = consumer.poll(timeout_ms=500, max_records=max_records)
            for tp in sorted(polled, key=lambda t: t.partition):
                messages = [m for m in polled[tp] if m.offset < ends[tp]]
                if messages:
                    apply(tp.partition, [(m.key, m.value) for m in messages])
                    report.records[tp.partition] += len(messages)
                    news = time.monotonic()
            for tp in [tp for tp in remaining if consumer.position(tp) >= remaining[tp]]:
                del remaining[tp]
            now = time.monotonic()
            if remaining and now - news > stall_s:
                raise ChangelogUnreadable(
                    f"{topic}: no record for {stall_s:.0f} s with {sorted(tp.partition for tp in remaining)} unfinished"
                )
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
