"""Which partition states a worker holds: those of the input partitions it owns, each current before it is read.

A worker of a group owns some of the clickstream's partitions, and the group moves them as workers come and
go. Each time partitions are assigned (:class:`stream.kafka.source.KafkaSource` pauses them until this has run),
:class:`PartitionStates` makes the core hold exactly the owned partitions' states, each one at the group's
committed offset of its partition:

* a state the worker already holds whose next offset is the committed one is kept as it is (a rebalance that
  gave the partition back, or the partitions a restart restored from the local checkpoint);
* any other is rebuilt from the partition's state changelog (:mod:`stream.kafka.changelog`): the committed
  changelog is the state at the committed input offsets, since both are written in one transaction;
* the states of partitions the worker no longer owns are flushed and dropped.

A rebuilt state that reflects input beyond the committed offset (at-least-once: the changelog is flushed before
the offsets commit) resumes reading after what it holds. One that reflects less is first waited for: the group's
offsets can show the previous owner's last transaction before the changelog does (its markers land one partition
at a time, see :mod:`stream.kafka.changelog`). Still behind after that (its changelog was lost, or the partition
was processed before changelogs existed), it is used as it is, with a warning and the gap as a metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from kafka.structs import TopicPartition

from stream.app.monitoring import WorkerMetrics
from stream.engine.processor import Processor
from stream.kafka.changelog import Change, read_changelog
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class PartitionStates:
    """The source's ``restore`` hook: brings the core's partition states in line with the assignment."""

    def __init__(
        self,
        processor: Processor,
        settings: KafkaSettings,
        owned: Callable[[], set[TopicPartition]],
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.processor = processor
        self.settings = settings
        self.owned = owned
        self.metrics = metrics or WorkerMetrics()
        self.restored: dict[int, str] = {}  # partition -> where its state came from, at its last assignment

    def __call__(self, committed: Mapping[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        processor = self.processor
        owned = {tp.partition for tp in self.owned()}
        for p in sorted(set(processor.partitions) - owned):
            self._drop(p)
        rebuild: list[int] = []
        for tp, start in sorted(committed.items(), key=lambda item: item[0].partition):
            part = processor.partitions.get(tp.partition)
            if part is not None and part.next_offset == start:
                self.restored[tp.partition] = "memory"
                self.metrics.partition_restores.labels("memory").inc()
            else:
                self._drop(tp.partition)
                rebuild.append(tp.partition)
        resume_at = self._rebuild(rebuild, {tp.partition: start for tp, start in committed.items()})
        self.metrics.partitions_owned.set(len(owned))
        topic = self.settings.clickstream_topic
        return {TopicPartition(topic, p): offset for p, offset in resume_at.items()}

    def _drop(self, partition: int) -> None:
        part = self.processor.drop_partition(partition)
        if part is not None:
            part.flush()  # what it holds is in the changelog already; this makes an on-disk store durable
            part.close()

    def _rebuild(self, partitions: list[int], committed: Mapping[int, int | None]) -> dict[int, int]:
        if not partitions:
            return {}
        processor = self.processor

        def apply(partition: int, changes: list[Change]) -> None:
            processor.partition(partition).apply(changes)

        for p in partitions:
            processor.partition(p)  # an empty state, even when its changelog holds nothing

        def current(partition: int) -> bool:
            start, held = committed[partition], processor.partition(partition).next_offset
            return start is None or (held is not None and held >= start)

        report = read_changelog(self.settings, partitions, apply, reached=current)
        for p, waited in sorted(report.waited.items()):
            log.info("partition %d: waited %.2f s at the changelog's end for the committed offset's state", p, waited)
        self.metrics.restore_records.inc(report.total)
        self.metrics.restore_seconds.inc(report.seconds)
        resume_at: dict[int, int] = {}
        for p in partitions:
            part = processor.partition(p)
            part.flush()  # the restored content is the changelog's already: nothing of it goes back there
            self.restored[p] = "changelog"
            self.metrics.partition_restores.labels("changelog").inc()
            start, held = committed[p], part.next_offset
            behind = 0
            if held is not None and (start is None or held > start):
                resume_at[p] = held  # at-least-once: the state already holds the records up to ``held``
            elif start is not None and (held is None or held < start):
                behind = start - (held or 0)  # at most: retention may have deleted the partition's first offsets
            if behind:
                log.warning(
                    "partition %d: its state changelog reflects input up to offset %s but the group committed %d; "
                    "its users' history from the %d records between is missing (changelog lost or written "
                    "outside the transaction, or processed before changelogs existed)",
                    p,
                    held,
                    start,
                    behind,
                )
            self.metrics.restore_behind.set(behind)
            log.info(
                "partition %d restored from %s: %d records, %d users, %d open decisions; resuming at offset %d",
                p,
                self.settings.state_changelog_topic,
                report.records[p],
                part.store.user_count,
                len(part.ledger),
                resume_at.get(p, start or 0),
            )
        log.info(
            "restored %d partition states from the changelog in %.2f s (%d records)",
            len(partitions),
            report.seconds,
            report.total,
        )
        return resume_at
