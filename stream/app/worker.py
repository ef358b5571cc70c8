"""The Kafka worker: the clickstream topic in, decisions, rewards and dead letters out.

Per batch: poll → (swap to a newly promoted snapshot, if any) → process the batch through the core → archive
(fsynced) → produce and commit the batch's outputs and offsets together in one Kafka transaction (exactly-once,
the default: :mod:`stream.kafka.transactions`; at-least-once flushes the outputs, then commits the offsets). A drift
alarm from the online learners becomes a retrain request in the registry (see :mod:`models.snapshots.schedule`).

State: every ``checkpoint_every_records`` records and at a clean stop, the core's state is checkpointed
(signed) with the offsets it reflects; a start restores it and silently replays what was committed after it
(:mod:`stream.app.recovery`), so a worker killed at any moment continues exactly where its last committed
transaction left it. After the start and each checkpoint the heap is settled (:mod:`stream.app.heap`): the
long-lived state is frozen out of the garbage collector's way, whose full collections otherwise paused
decisions for 112-193 ms.

Faults: a batch whose outputs or transaction fail (broker down, a rebalance fencing the commit) is aborted, and
a consumer that stops receiving records while its partitions lag (``kafka.stall_timeout_s``) is given up; the
worker closes its clients, rebuilds its state from the checkpoint and starts again after a backoff (0.5 s
doubling to 30 s, reset by the next committed batch), logging why. Another worker taking over the same
transactional id stops this one (it is a zombie). SIGTERM/SIGINT set a stop flag: the batch in hand is
finished and committed, the state is checkpointed, and the clients close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from models.behaviour.features import FEATURES_VERSION
from models.history.archive import ArchiveWriter
from models.snapshots.registry import Registry
from models.snapshots.schedule import request_retrain
from models.snapshots.watcher import RegistryWatcher
from stream.app import heap
from stream.app.build import build_processor, writer_id
from stream.app.monitoring import Health, StallReporter, WorkerMetrics, start_metrics_server
from stream.app.partitions import PartitionStates
from stream.app.recovery import Offsets, Restored, restore_state, write_checkpoint
from stream.app.settings import Settings
from stream.app.shared_learning import SharedLearning
from stream.engine.pipeline import PipelineStats, Sink, run_pipeline
from stream.engine.processor import Processor
from stream.io.file_sink import ArchiveSink, TeeSink
from stream.kafka.clients import ensure_topics, make_producer
from stream.kafka.errors import DeliveryError, SourceStalled, WorkerFenced
from stream.kafka.sink import KafkaSink
from stream.kafka.source import KafkaSource
from stream.kafka.transactions import KafkaTransaction, default_instance_id

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
LAG_EVERY_S = 5.0  # consumer lag costs a round trip to the broker


@dataclass(slots=True)
class WorkerResult:
    stats: PipelineStats
    processor: Processor
    restored: bool
    recoveries: int = 0  # times the worker rebuilt its state after a failed batch


def _drift_alarms(processor: Processor) -> int:
    return sum(v for k, v in processor.counters.items() if k.startswith("drift_alarms."))


def clock_ms() -> int:
    return int(time.time() * 1000)


def instance_id(settings: Settings) -> str:
    return settings.kafka.instance_id or default_instance_id(str(settings.state_dir.resolve()))


def _transaction(settings: Settings) -> KafkaTransaction | None:
    k = settings.kafka
    if k.processing_guarantee != "exactly-once":
        return None
    tid = f"{k.group_id}-{instance_id(settings)}"
    producer = make_producer(k, transactional_id=tid, transaction_timeout_ms=k.transaction_timeout_ms)
    try:
        return KafkaTransaction(producer, timeout_ms=k.transaction_timeout_ms)
    except BaseException:
        producer.close()
        raise


class _Attempt:
    """One life of the worker's clients and core: restore, consume until stopped or a batch fails."""

    def __init__(
        self,
        settings: Settings,
        watcher: RegistryWatcher | None,
        metrics: WorkerMetrics | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.watcher = watcher
        self.metrics = metrics or WorkerMetrics()
        self.health = health or Health(settings.health_stall_s)
        self.stats = PipelineStats()
        self.restored: Restored | None = None
        self.processor: Processor | None = None
        self.offsets: Offsets = {}  # what the core's state reflects, per partition
        self.checkpointed_at = 0
        self.partition_states: PartitionStates | None = None
        self.learning: SharedLearning | None = None

    def _take_partitions(self, committed: Mapping[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        """The source's hook on assignment: each owned partition's state current before it is read."""
        assert self.partition_states is not None, "the core is built before the first poll"
        self.health.tick("restoring")
        resume_at = self.partition_states(committed)
        if self.learning is not None:
            self.learning.caught_up()  # what the others taught while this worker was not consuming is catch-up
        return resume_at

    def run(self, stop: threading.Event, on_batch: Callable[[PipelineStats], None]) -> None:
        settings = self.settings
        models = settings.models
        # The transactional producer first: its init aborts what a killed predecessor left open, so the
        # committed offsets read next are final.
        transaction = _transaction(settings)
        sink: Sink | None = None
        source: KafkaSource | None = None
        try:
            kafka_sink = KafkaSink(settings.kafka, transaction=transaction, worker_id=instance_id(settings))
            sink = kafka_sink
            if models.archive is not None:
                writer = ArchiveWriter(models.archive, writer_id(settings, "worker"))
                sink = TeeSink(ArchiveSink(writer), kafka_sink)
            member = instance_id(settings) if settings.kafka.static_membership else None
            source = KafkaSource(
                settings.kafka, transaction=transaction, group_instance_id=member, restore=self._take_partitions
            )
            snapshot = self.watcher.poll(clock_ms()) if self.watcher is not None else None
            self.health.tick("restoring")
            build = lambda: build_processor(settings, snapshot, keep_changes=True)  # noqa: E731
            self.processor, self.restored = restore_state(build, settings, source.start_offsets)
            self.learning = SharedLearning(self.processor, build, settings.kafka, instance_id(settings), self.metrics)
            self.learning.start(
                self.restored.fleet if self.restored is not None else None,
                replayed_gap=settings.state_store == "memory",
            )
            self.partition_states = PartitionStates(
                self.processor, settings.kafka, source.consumer.assignment, self.metrics
            )
            if self.restored is not None:
                self.offsets = dict(self.restored.offsets)
                self.checkpointed_at = -self.restored.replayed  # replayed records count towards the next checkpoint
            else:  # start from the group's offsets with empty state, and say so on disk before the first batch
                self.offsets = source.start_offsets()
                self._checkpoint(source, 0)
            self.metrics.attach(self.processor.counters)
            heap.settle()  # the restored (or fresh) core is long-lived: out of the collector's way
            self._consume(source, sink, stop, on_batch)
        finally:
            if sink is not None:
                sink.close()
            elif transaction is not None:
                transaction.producer.close()
            if source is not None:
                source.close()
            if self.learning is not None:
                self.learning.close()

    def _consume(
        self, source: KafkaSource, sink: Sink, stop: threading.Event, on_batch: Callable[[PipelineStats], None]
    ) -> None:
        processor = self.processor
        assert processor is not None
        settings = self.settings
        alarms = _drift_alarms(processor)
        metrics = self.metrics
        batch_started: float | None = None
        records_before = 0
        lag_at = 0.0

        learning = self.learning
        assert learning is not None

        def before_batch() -> None:
            nonlocal batch_started
            batch_started = time.perf_counter()
            learning.fold_new()  # what the other workers taught since the last batch
            if self.watcher is None:
                return
            swapped = self.watcher.poll(clock_ms())
            if swapped is not None:
                processor.model_snapshot = swapped

        def after_batch(stats: PipelineStats) -> None:
            nonlocal alarms, batch_started, records_before, lag_at
            self.health.tick("consuming", records=stats.records)
            if batch_started is None:  # an empty poll: an idle worker keeps up with the fleet all the same
                learning.fold_new()
            else:  # a batch went through (poll to commit)
                metrics.batch_seconds.observe(time.perf_counter() - batch_started)
                metrics.batch_records.observe(stats.records - records_before)
                metrics.last_batch.set(time.time())
                batch_started, records_before = None, stats.records
                self._observe(processor, source)
            if time.monotonic() - lag_at >= LAG_EVERY_S:
                lag_at = time.monotonic()
                metrics.lag.set(source.lag())
                metrics.deleted_unread.inc(source.take_deleted_unread())
            now = _drift_alarms(processor)
            if now > alarms and settings.models.registry is not None:
                request_retrain(settings.models.registry, writer_id(settings, "worker"), "drift alarm", clock_ms())
                log.warning("drift alarm: asked the registry's scheduler for an early retrain")
            alarms = now
            if stats.records - self.checkpointed_at >= settings.checkpoint_every_records:
                self._checkpoint(source, stats.records)
            on_batch(stats)

        log.info(
            "worker consuming %s as group %s (policy %s, seed %d, %s)",
            settings.kafka.clickstream_topic,
            settings.kafka.group_id,
            processor.policy.name,
            settings.seed,
            settings.kafka.processing_guarantee,
        )
        self.stats = run_pipeline(
            source,
            processor,
            sink,
            batch_size=settings.kafka.max_poll_records,
            should_stop=stop.is_set,
            on_batch=after_batch,
            before_batch=before_batch,
            more_outputs=lambda last: learning.outputs(final=last),
        )
        last = learning.outputs(final=True)  # learned since the last lesson, when the stop came between batches
        if last:
            sink.write(last)
            sink.flush()
            if source.transaction is not None:
                source.transaction.commit({}, None)
        if self._checkpoint(source, self.stats.records):
            log.info("stopped cleanly after %d records; state saved at offsets %s", self.stats.records, self.offsets)
        else:  # the state is ahead of the group's offsets: a checkpoint of it would double-count on restart
            log.warning("stopped after %d records; offsets still uncommitted, so no checkpoint", self.stats.records)

    def _observe(self, processor: Processor, source: KafkaSource) -> None:
        m = self.metrics
        m.observe_counters(processor.counters)
        m.observe_stages(processor.clock.ns)
        m.users.set(processor.user_count)
        m.open_decisions.set(processor.open_decisions)
        versions = {k: v for k, v in processor.model_versions().items() if v is not None}
        created = getattr(processor.model_snapshot, "metadata", {}).get("created_ms")
        m.observe_models(versions, created if isinstance(created, int) else None, clock_ms())
        if source.transaction is not None:
            m.observe_transactions(source.transaction.committed, source.transaction.aborted)

    def _checkpoint(self, source: KafkaSource, records: int) -> bool:
        """Checkpoint the core at the offsets just committed; False (nothing written) while commits are deferred."""
        assert self.processor is not None
        if not source.settle_commits():
            return False
        self.offsets.update(source.committed)
        missing = [tp for tp in source.consumer.assignment() if tp not in self.offsets]
        if missing:
            self.offsets.update(source.committed_offsets(missing))
        try:
            write_checkpoint(
                self.processor, self.offsets, self.settings, self.learning.saved() if self.learning else None
            )
            self.metrics.checkpoints.labels("written").inc()
        except OSError as exc:
            self.metrics.checkpoints.labels(
                "failed"
            ).inc()  # e.g. the disk is full: processing goes on, a restart replays a longer gap
            log.error(
                "checkpoint at offsets %s failed (%s); the previous checkpoint stays valid, next try in %d records",
                self.offsets,
                exc,
                self.settings.checkpoint_every_records,
            )
        self.checkpointed_at = records
        heap.settle()  # beside the checkpoint's own pause, not in a batch's
        return True


def run_worker(
    settings: Settings,
    stop: threading.Event,
    on_batch: Callable[[PipelineStats], None] | None = None,
    create_topics: bool = True,
) -> WorkerResult:
    """Consume until ``stop`` is set, recovering from failed batches; returns the run's figures and the core.
    Serves ``/metrics`` and ``/healthz`` meanwhile (``metrics_port``)."""
    models = settings.models
    watcher = (
        RegistryWatcher(Registry(models.registry), FEATURES_VERSION, models.registry_poll_s)
        if models.registry is not None
        else None
    )
    heap.tune()
    metrics = WorkerMetrics()
    health = Health(settings.health_stall_s)
    server = start_metrics_server(metrics, health, settings.metrics_host, settings.metrics_port)
    reporter = StallReporter(health, threading.get_ident())
    try:
        return _run_attempts(settings, stop, on_batch, create_topics, watcher, metrics, health)
    finally:
        health.tick("stopped")
        reporter.close()
        if server is not None:
            server.close()


def _run_attempts(
    settings: Settings,
    stop: threading.Event,
    on_batch: Callable[[PipelineStats], None] | None,
    create_topics: bool,
    watcher: RegistryWatcher | None,
    metrics: WorkerMetrics,
    health: Health,
) -> WorkerResult:
    backoff = BACKOFF_FIRST_S
    recoveries = 0
    while True:
        attempt = _Attempt(settings, watcher, metrics, health)
        committed_batches = 0

        def counted(stats: PipelineStats) -> None:
            nonlocal committed_batches, backoff
            if stats.batches > committed_batches:
                committed_batches = stats.batches
                backoff = BACKOFF_FIRST_S  # a batch went through: the next failure starts the backoff afresh
            if on_batch is not None:
                on_batch(stats)

        try:
            if create_topics:
                ensure_topics(settings.kafka)
            attempt.run(stop, counted)
        except WorkerFenced:
            log.error("another worker took over transactional id of this one; stopping (this one is a zombie)")
            raise
        except (DeliveryError, KafkaError) as exc:
            recoveries += 1
            metrics.recoveries.inc()
            health.tick("recovering", last_error=str(exc)[:300])
            what = "consumer stalled" if isinstance(exc, SourceStalled) else "batch failed"
            log.error(
                "%s (%s); nothing uncommitted is kept. Rebuilding clients and state from the checkpoint in %.1f s",
                what,
                exc,
                backoff,
            )
            if stop.wait(backoff):
                raise
            backoff = min(backoff * 2.0, BACKOFF_MAX_S)
            continue
        assert attempt.processor is not None
        return WorkerResult(attempt.stats, attempt.processor, attempt.restored is not None, recoveries)
