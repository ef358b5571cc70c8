"""The Kafka source: a consumer-group member whose batches feed the processing core (kafka-python only).

:func:`stream.engine.pipeline.run_pipeline` drives it like any other source; it commits a batch's offsets only
after the sink has made the batch's outputs durable: through the transaction under exactly-once (the default),
by the consumer after the outputs are acknowledged under at-least-once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    KafkaTimeoutError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.core.records import SourceRecord
from stream.kafka.clients import polled_records
from stream.kafka.settings import KafkaSettings
from stream.kafka.stall_watch import ConsumerView, StallWatch
from stream.kafka.transactions import KafkaTransaction

log = logging.getLogger(__name__)


def _finish_joins_in_flight(consumer: KafkaConsumer) -> None:
    """Work around kafka-python 3.0.12 leaving a group join half done, after which the member is expelled.

    Its coordinator keeps a join in flight across short polls, but re-enters it only while ``need_rejoin()``
    is true; when the rejoin was asked for by a metadata change, the leader's own assignment makes that false
    before the SyncGroup answer is handled. The join then never completes: no heartbeats, the old assignment
    keeps fetching, commits fail with ``RebalanceInProgressError`` for ever and the broker expels the member
    after ``session_timeout_ms`` (seen as a worker that stops consuming). Counting a join in flight as a
    reason to rejoin lets the next poll finish it. A no-op on versions without the attribute.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "_join_task"):
        return
    need_rejoin = coordinator.need_rejoin

    def need_rejoin_or_join_in_flight() -> bool:
        return bool(need_rejoin()) or coordinator._join_task is not None

    coordinator.need_rejoin = need_rejoin_or_join_in_flight


# Called with the partitions newly assigned and the group's committed offset of each (None: none yet), before
# any of their records is handed out; returns where to resume reading instead, if anywhere.
Restore = Callable[[Mapping[TopicPartition, int | None]], Mapping[TopicPartition, int]]


class _Listener(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source._on_assigned(list(assigned))


class KafkaSource:
    """The clickstream topic, read by a consumer group, committed only when told.

    Given ``restore``, a partition newly assigned is paused until ``restore`` has rebuilt its state (called
    from :meth:`next_batch`, outside the group's join): none of its records is handed out before.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        metadata_wait_s: float = 60.0,
        transaction: KafkaTransaction | None = None,
        group_instance_id: str | None = None,
        restore: Restore | None = None,
        **extra: Any,
    ) -> None:
        self.settings = settings
        self.transaction = transaction
        self.restore = restore
        self._to_restore: set[TopicPartition] = set()
        self.consumer = KafkaConsumer(
            **settings.client_options(),
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            fetch_max_bytes=settings.fetch_max_bytes,
            isolation_level=settings.isolation_level,
            group_instance_id=group_instance_id,
            **extra,
        )
        _finish_joins_in_flight(self.consumer)
        self._await_topic(settings.clickstream_topic, metadata_wait_s)
        self.consumer.subscribe([settings.clickstream_topic], listener=_Listener(self))
        self.committed: dict[TopicPartition, int] = {}
        self._uncommitted: dict[TopicPartition, int] = {}
        # the next offset per partition whose effects this worker holds (state updated, outputs acknowledged),
        # whether or not the group's commit of it went through
        self._processed: dict[TopicPartition, int] = {}
        self._read: dict[TopicPartition, int] = {}  # the next offset after the last record handed out
        self._started: dict[TopicPartition, int] = {}  # where the group started, per partition (start_offsets)
        self._deleted_unread = 0  # input records the broker deleted before they were read, not yet taken
        self._stall = StallWatch(settings.stall_timeout_s, probe=self._probe)

    def _await_topic(self, topic: str, wait_s: float) -> None:
        """Wait until the topic's partitions are in the client's metadata before joining the group.

        A member that joins while its topic is unknown (just created, metadata not yet propagated) gets no
        partitions, and kafka-python 3.0 did not always rebalance once the metadata arrived: the worker sat idle.
        """
        deadline = time.monotonic() + wait_s
        while True:
            if topic in self.consumer.topics() and self.consumer.partitions_for_topic(topic):
                return
            if time.monotonic() >= deadline:
                log.warning("topic %s has no partitions after %.0f s; subscribing anyway", topic, wait_s)
                return
            time.sleep(0.2)

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
        if self.restore is None or not assigned:
            return
        self._to_restore.update(assigned)
        self.consumer.pause(*assigned)  # inside the join: nothing of them is fetched before their state is back

    def _restore_assigned(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """Rebuild the state of the partitions assigned by the last poll, then let them be read."""
        assert self.restore is not None
        owned = self.consumer.assignment()
        pending = sorted((tp for tp in self._to_restore if tp in owned), key=lambda t: t.partition)
        self._to_restore.clear()
        if not pending:
            return
        for tp in pending:  # paused inside the join, so none are expected; never hand out a record unrestored
            messages = polled.pop(tp, None)
            if messages:
                self.consumer.seek(tp, messages[0].offset)
            self._read.pop(tp, None)
            self._processed.pop(tp, None)
            self._uncommitted.pop(tp, None)
        committed = {tp: self.consumer.committed(tp) for tp in pending}
        self._note_starts(committed)
        resume_at = self.restore(committed)
        for tp, offset in resume_at.items():
            self.consumer.seek(tp, offset)
            self._processed[tp] = offset  # at-least-once: the state already holds what lies before
            self._started[tp] = offset
        self.consumer.resume(*pending)
        self._stall.reset()  # a long restore is not a stalled consumer

    def next_batch(self, max_records: int) -> list[SourceRecord]:
        self.settle_commits()
        polled = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=max_records)
        if self._to_restore:
            self._restore_assigned(polled)
        for tp in list(polled):
            # After a rebalance gives a partition back before its commit went through, the consumer restarts
            # from the group's older offset: skip what this worker already processed (its effects are held).
            done = self._processed.get(tp)
            if done is not None:
                polled[tp] = [m for m in polled[tp] if m.offset >= done]
        for tp, messages in polled.items():
            if messages:
                expected = self._read.get(tp, self._started.get(tp))
                if expected is not None and messages[0].offset > expected + 1:
                    self._check_gap(tp, expected)
                self._read[tp] = messages[-1].offset + 1
        records = polled_records(polled)
        self._watch_for_stall(bool(records))
        return records

    def _check_deleted(self, tp: TopicPartition, expected: int, log_start: int | None = None) -> int:
        """Where ``tp`` now starts, after saying so when the broker deleted records from ``expected`` on before
        this worker read them (retention by time or size, or a delete-records call).

        The client then resets its position to the partition's first offset (``auto_offset_reset``) without a
        word: the records are gone, nothing this worker acknowledged is lost, but the skip must not be silent.
        Called on a gap of more than one offset between the records read (a gap of one is usually a
        transaction's marker), and by the stall watch's probe, which sees a skip that nothing follows.
        """
        if log_start is None:
            log_start = self.consumer.beginning_offsets([tp])[tp]
        if log_start > expected:
            self._deleted_unread += log_start - expected
            log.warning(
                "%s[%d]: offsets %d to %d were deleted by the broker (retention) before this worker read them; "
                "up to %d input records are lost. Keep the input topic's retention above the age of its records' "
                "timestamps (recordings replayed into Kafka carry their events' times).",
                tp.topic,
                tp.partition,
                expected,
                log_start - 1,
                log_start - expected,
            )
        return log_start

    def _check_gap(self, tp: TopicPartition, expected: int) -> None:
        try:
            self._check_deleted(tp, expected)
        except KafkaError as exc:  # the records in hand are fine; only the check failed
            log.warning(
                "%s[%d]: a gap in the offsets from %d; whether the broker deleted records there is unknown: its "
                "first offset could not be read (%s: %s)",
                tp.topic,
                tp.partition,
                expected,
                type(exc).__name__,
                exc,
            )

    def take_deleted_unread(self) -> int:
        """Input records found deleted unread since the last call (an upper bound: transaction markers in the
        deleted range count too)."""
        taken, self._deleted_unread = self._deleted_unread, 0
        return taken

    def _position(self, tp: TopicPartition) -> int | None:
        """The consumer's fetch position without a request (the public ``position`` may block to refresh it)."""
        state = getattr(self.consumer, "_subscription", None)
        known = state.assignment.get(tp) if state is not None else None
        position = getattr(known, "position", None)
        return position.offset if position is not None else self._read.get(tp)

    def _watch_for_stall(self, got_records: bool) -> None:
        coordinator = getattr(self.consumer, "_coordinator", None)
        member = str(getattr(coordinator, "state", "<unknown>")).strip("<>")
        assigned = self.consumer.assignment()
        next_offsets = {tp: off for tp in assigned if (off := self._read.get(tp, self._started.get(tp))) is not None}
        view = ConsumerView(
            ends={tp: (self._position(tp), self.consumer.highwater(tp)) for tp in assigned},
            member=member,
            coordinator_known=getattr(coordinator, "coordinator_id", None) is not None,
            next=next_offsets,
        )
        self._stall.observe(got_records, view)

    def _probe(self, starts: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Read the partitions afresh from ``starts`` with a throw-away consumer (no group, same isolation): the
        offset of the first record found per partition; partitions read to their end without one are left out
        (caught up, or only transaction markers and aborted records in between). A start the broker has deleted
        (retention) is reported as lost and the read begins at the partition's first offset instead."""
        timeout_s = min(max(self.settings.stall_timeout_s, 1.0), 30.0)
        deadline = time.monotonic() + timeout_s
        reader = KafkaConsumer(
            **self.settings.client_options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level=self.settings.isolation_level,
        )
        try:
            ends = reader.end_offsets(list(starts), timeout_ms=int(timeout_s * 1000))
            firsts = reader.beginning_offsets(list(starts), timeout_ms=int(timeout_s * 1000))
            starts = {tp: self._skip_deleted(tp, start, firsts[tp]) for tp, start in starts.items()}
            pending = {tp: start for tp, start in starts.items() if start < ends[tp]}
            reader.assign(list(pending))
            for tp, start in pending.items():
                reader.seek(tp, start)
            found: dict[TopicPartition, int] = {}
            while pending:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"{len(pending)} partitions not read to their end in {timeout_s:.0f} s")
                for tp, messages in reader.poll(timeout_ms=200, max_records=1).items():
                    if messages and tp in pending:
                        found[tp] = messages[0].offset
                        del pending[tp]
                for tp in [tp for tp in pending if reader.position(tp) >= ends[tp]]:
                    del pending[tp]
            return found
        finally:
            reader.close()

    def _skip_deleted(self, tp: TopicPartition, start: int, log_start: int) -> int:
        """Where a probe of ``tp`` from ``start`` can begin: past what the broker deleted, which is reported once
        (the worker's next offset moves to the partition's first, where the client has already moved)."""
        if log_start <= start:
            return start
        self._read[tp] = self._check_deleted(tp, start, log_start)
        return log_start

    def commit(self, batch: Sequence[SourceRecord]) -> None:
        if not batch:
            return
        if self.transaction is not None:
            self._commit_in_transaction(batch)
            return
        positions = self._uncommitted
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            positions[tp] = max(positions.get(tp, -1), r.offset + 1)
            self._processed[tp] = max(self._processed.get(tp, -1), r.offset + 1)
        self._commit_pending()

    def _commit_in_transaction(self, batch: Sequence[SourceRecord]) -> None:
        """Offsets into the sink's transaction, then commit it (raises TransactionAborted: nothing visible)."""
        assert self.transaction is not None
        positions: dict[TopicPartition, int] = {}
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            positions[tp] = max(positions.get(tp, -1), r.offset + 1)
        self.transaction.commit(positions, self.consumer.group_metadata())
        log.debug("committed %s in a transaction", positions)
        self.committed.update(positions)

    def _commit_deferred(self) -> None:
        """Retry a commit the group refused during a rebalance, for the partitions this worker still owns.

        A partition that moved to another member is dropped: its new owner restarts from the last commit
        (at-least-once), and a later commit from here could move the group's offset backwards.
        """
        owned = self.consumer.assignment()
        if not owned:
            return  # mid-rebalance: nothing is owned until the join completes
        for tp in [tp for tp in self._uncommitted if tp not in owned]:
            del self._uncommitted[tp]
            self._processed.pop(tp, None)
        self._commit_pending()

    def _commit_pending(self) -> None:
        positions = self._uncommitted
        if not positions:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in positions.items()})
        except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError) as exc:
            # The group is rebalancing. The batch's outputs are already durable, so nothing is lost: the offsets
            # are committed with the next batch, or the partition's new owner processes the batch again
            # (at-least-once; decision ids are deterministic, so the repeats are recognisable).
            log.warning("offset commit deferred (%s): %s", type(exc).__name__, positions)
            return
        log.debug("committed %s", positions)
        self.committed.update(positions)
        self._uncommitted = {}

    def settle_commits(self) -> bool:
        """Try once more to commit what a rebalance deferred; True when nothing processed is left uncommitted."""
        if self._uncommitted:
            self._commit_deferred()
        return not self._uncommitted

    def committed_offsets(self, partitions: Sequence[TopicPartition] = ()) -> dict[TopicPartition, int | None]:
        """The group's committed offsets for the assigned partitions (and any others named)."""
        tps = set(self.consumer.assignment()) | set(self.committed) | set(partitions)
        return {tp: self.consumer.committed(tp) for tp in sorted(tps, key=lambda t: (t.topic, t.partition))}

    def start_offsets(self, partitions: Sequence[TopicPartition] = ()) -> dict[TopicPartition, int | None]:
        """Where the group starts on each partition (default: every partition of the topic): its committed
        offset, else the partition's first offset (``auto_offset_reset="earliest"``)."""
        topic = self.settings.clickstream_topic
        tps = list(partitions) or [
            TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        return self._note_starts({tp: self.consumer.committed(tp) for tp in tps})

    def _note_starts(self, committed: Mapping[TopicPartition, int | None]) -> dict[TopicPartition, int | None]:
        """Record where each partition starts given the group's ``committed`` offsets (None: from the first)."""
        first = self.consumer.beginning_offsets([tp for tp, off in committed.items() if off is None])
        starts: dict[TopicPartition, int] = {tp: first[tp] if off is None else off for tp, off in committed.items()}
        self._started.update(starts)
        return dict(starts)

    def lag(self) -> int:
        """Messages behind the newest the broker reported (fetch responses' highwater marks) on the assigned
        partitions this worker has read from; no request is made and the consumer's positions are not touched."""
        lag = 0
        for tp in self.consumer.assignment():
            highwater, done = self.consumer.highwater(tp), self._read.get(tp)
            if highwater is not None and done is not None:
                lag += max(0, highwater - done)
        return lag

    def close(self) -> None:
        self.consumer.close(autocommit=False)
