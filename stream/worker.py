"""The Kafka worker: the clickstream topic in, decisions, rewards and dead letters out.

Per batch: poll → process every record through the core → produce → flush (broker acknowledged) → commit the
batch's offsets. SIGTERM/SIGINT set a stop flag: the batch in hand is finished and committed, the core's state is
snapshotted next to the committed offsets, and the clients close.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kafka.structs import TopicPartition

from stream.checkpoint import offsets_key, read_snapshot, snapshot_path, write_snapshot
from stream.kafka_io import KafkaSink, KafkaSource, ensure_topics
from stream.pipeline import PipelineStats, run_pipeline
from stream.processor import Processor
from stream.replay import build_processor
from stream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerResult:
    stats: PipelineStats
    processor: Processor
    restored: bool


def _restore(processor: Processor, source: KafkaSource, settings: Settings) -> bool:
    path = snapshot_path(settings.state_dir, settings.kafka.group_id)
    found = read_snapshot(path)
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


def run_worker(
    settings: Settings,
    stop: threading.Event,
    on_batch: Callable[[PipelineStats], None] | None = None,
    create_topics: bool = True,
) -> WorkerResult:
    """Consume until ``stop`` is set; returns the run's figures and the core (for tests and summaries)."""
    if create_topics:
        ensure_topics(settings.kafka)
    processor = build_processor(settings)
    source = KafkaSource(settings.kafka)
    sink = KafkaSink(settings.kafka)
    restored = _restore(processor, source, settings)
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
            on_batch=on_batch,
        )
        offsets = offsets_key(source.committed_offsets())
        write_snapshot(snapshot_path(settings.state_dir, settings.kafka.group_id), offsets, processor.snapshot())
        log.info("stopped cleanly after %d records; state saved at offsets %s", stats.records, offsets)
    finally:
        sink.close()
        source.close()
    return WorkerResult(stats, processor, restored)
