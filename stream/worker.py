"""The Kafka worker: the clickstream topic in, decisions, rewards and dead letters out.

Per batch: poll → (swap to a newly promoted snapshot, if any) → process the batch through the core → produce
and archive → flush (broker acknowledged, archive fsynced) → commit the batch's offsets. A drift alarm from the
online learners becomes a retrain request in the registry (see :mod:`models.schedule`).

SIGTERM/SIGINT set a stop flag: the batch in hand is finished and committed, the core's state is snapshotted
(signed) next to the committed offsets, and the clients close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka.structs import TopicPartition

from models.archive import ArchiveWriter
from models.features import FEATURES_VERSION
from models.registry import Registry, RegistryWatcher
from models.schedule import request_retrain
from stream.checkpoint import checkpoint_key, offsets_key, read_snapshot, snapshot_path, write_snapshot
from stream.kafka_io import KafkaSink, KafkaSource, ensure_topics
from stream.pipeline import PipelineStats, run_pipeline
from stream.processor import Processor
from stream.replay import build_processor, writer_id
from stream.settings import Settings
from stream.sinks import ArchiveSink, Sink, TeeSink

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerResult:
    stats: PipelineStats
    processor: Processor
    restored: bool


def _restore(processor: Processor, source: KafkaSource, settings: Settings) -> bool:
    path = snapshot_path(settings.state_dir, settings.kafka.group_id)
    found = read_snapshot(path, _key(settings))
    if found is None:
        return False
    offsets, state = found
    partitions = []
    for name in offsets:
        topic, _, partition = name.rpartition(":")
        partitions.append(TopicPartition(topic, int(partition)))
    current = offsets_key(source.committed_offsets(partitions))
    if {k: v for k, v in current.items() if k in offsets} != offsets:
        log.warning("snapshot %s is stale (offsets %s, group now at %s); starting empty", path, offsets, current)
        return False
    processor.restore(state)
    log.info("restored state from %s at offsets %s", path, offsets)
    return True


def _key(settings: Settings) -> bytes:
    configured = settings.state_key.get_secret_value().encode() if settings.state_key is not None else None
    return checkpoint_key(settings.state_dir, configured)


def _drift_alarms(processor: Processor) -> int:
    return sum(v for k, v in processor.counters.items() if k.startswith("drift_alarms."))


def clock_ms() -> int:
    return int(time.time() * 1000)


def run_worker(
    settings: Settings,
    stop: threading.Event,
    on_batch: Callable[[PipelineStats], None] | None = None,
    create_topics: bool = True,
) -> WorkerResult:
    """Consume until ``stop`` is set; returns the run's figures and the core (for tests and summaries)."""
    if create_topics:
        ensure_topics(settings.kafka)
    models = settings.models
    watcher = (
        RegistryWatcher(Registry(models.registry), FEATURES_VERSION, int(models.registry_poll_s * 1000))
        if models.registry is not None
        else None
    )
    processor = build_processor(settings, watcher.poll(clock_ms()) if watcher is not None else None)
    source = KafkaSource(settings.kafka)
    sink: Sink = KafkaSink(settings.kafka)
    if models.archive is not None:
        writer = ArchiveWriter(models.archive, writer_id(settings, "worker"))
        sink = TeeSink(ArchiveSink(writer), sink)
    restored = _restore(processor, source, settings)
    alarms = _drift_alarms(processor)

    def before_batch() -> None:
        if watcher is None:
            return
        swapped = watcher.poll(clock_ms())
        if swapped is not None:
            processor.model_snapshot = swapped

    def after_batch(stats: PipelineStats) -> None:
        nonlocal alarms
        now = _drift_alarms(processor)
        if now > alarms and models.registry is not None:
            request_retrain(models.registry, writer_id(settings, "worker"), "drift alarm", clock_ms())
            log.warning("drift alarm: asked the registry's scheduler for an early retrain")
        alarms = now
        if on_batch is not None:
            on_batch(stats)

    log.info(
        "worker consuming %s as group %s (policy %s, seed %d)",
        settings.kafka.clickstream_topic,
        settings.kafka.group_id,
        processor.policy.name,
        settings.seed,
    )
    stats = PipelineStats()
    try:
        stats = run_pipeline(
            source,
            processor,
            sink,
            batch_size=settings.kafka.max_poll_records,
            should_stop=stop.is_set,
            on_batch=after_batch,
            before_batch=before_batch,
        )
        if source.settle_commits():
            offsets = offsets_key(source.committed_offsets())
            path = snapshot_path(settings.state_dir, settings.kafka.group_id)
            write_snapshot(path, offsets, processor.snapshot(), _key(settings))
            log.info("stopped cleanly after %d records; state saved at offsets %s", stats.records, offsets)
        else:  # the state is ahead of the group's offsets: a snapshot of it would double-count on restart
            log.warning("stopped after %d records; offsets still uncommitted, so no state snapshot", stats.records)
    finally:
        sink.close()
        source.close()
    return WorkerResult(stats, processor, restored)
