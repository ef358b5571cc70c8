"""Kafka clients as offerstream configures them: producers, topics, and records out of a poll. kafka-python only.

The worker's source and sink are :class:`stream.kafka.source.KafkaSource` and :class:`stream.kafka.sink.KafkaSink`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
)
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition

from stream.core.records import OutputKind, SourceRecord
from stream.kafka.model_topic import ensure_model_topic
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

DEAD_LETTER_MAX_BYTES = 4_194_304  # dead letters carry input bytes (≤ 1 MB by default), base64-inflated


def topic_for(settings: KafkaSettings, kind: OutputKind) -> str:
    return {
        OutputKind.DECISION: settings.decisions_topic,
        OutputKind.REWARD: settings.rewards_topic,
        OutputKind.DEAD_LETTER: settings.dead_letter_topic,
        OutputKind.LESSON: settings.learning_topic,
    }[kind]


def ensure_topics(
    settings: KafkaSettings, timeout_ms: int = 30_000, configs: Mapping[str, str] | None = None
) -> list[str]:
    """Create offerstream's topics where they are missing, with the topic ``configs`` given (e.g.
    ``{"retention.ms": "-1"}`` for topics that will hold old recordings); returns the names created.

    The state changelog (compacted, never deleted by age) gets as many partitions as the clickstream topic
    has, and more when the clickstream topic has grown (see :func:`ensure_changelog`)."""
    admin = KafkaAdminClient(**settings.client_options(), request_timeout_ms=timeout_ms)
    common = dict(configs or {})
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.clickstream_topic, settings.partitions, 1, topic_configs=dict(common)),
            NewTopic(settings.decisions_topic, settings.partitions, 1, topic_configs=dict(common)),
            NewTopic(settings.rewards_topic, settings.partitions, 1, topic_configs=dict(common)),
            NewTopic(
                settings.dead_letter_topic,
                settings.partitions,
                1,
                topic_configs={**common, "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
            ),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                admin.create_topics(missing, timeout_ms=timeout_ms)
            log.info("created topics %s", [t.name for t in missing])
        return (
            [t.name for t in missing]
            + ensure_changelog(admin, settings, existing, timeout_ms)
            + ensure_model_topic(admin, settings, existing, timeout_ms)
        )
    finally:
        admin.close()


CHANGELOG_CONFIGS = {
    "cleanup.policy": "compact",  # the last record of each key is kept for ever; a tombstone deletes it
    "min.compaction.lag.ms": "0",
    "segment.ms": str(3_600_000),  # roll hourly, so compaction keeps restores short
}


def _partition_count(admin: KafkaAdminClient, topic: str, wait_s: float = 30.0) -> int:
    """The topic's partitions, waiting while a topic just created shows none yet (its metadata is still
    propagating: a changelog created from that count would be refused with 0 partitions)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            [described] = admin.describe_topics([topic])
            count = len(described.get("partitions") or ())
        except KafkaError:  # e.g. not known to this broker yet
            if time.monotonic() >= deadline:
                raise
            count = 0
        if count > 0 or time.monotonic() >= deadline:
            return count
        time.sleep(0.1)


def ensure_changelog(
    admin: KafkaAdminClient, settings: KafkaSettings, existing: set[str], timeout_ms: int
) -> list[str]:
    """The state changelog topic with one partition per clickstream partition: created when missing, grown
    when the clickstream topic has more partitions than it (its partitions are never fewer). Returns its name
    when it was created."""
    topic = settings.state_changelog_topic
    wanted = _partition_count(admin, settings.clickstream_topic)
    if wanted <= 0:
        raise KafkaError(f"{settings.clickstream_topic} shows no partitions; cannot size its state changelog")
    if topic not in existing:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, wanted, 1, topic_configs=CHANGELOG_CONFIGS)], timeout_ms=timeout_ms)
            log.info("created the state changelog %s (%d partitions, compacted)", topic, wanted)
            return [topic]
        return []
    have = _partition_count(admin, topic)
    if have < wanted:
        admin.create_partitions({topic: NewPartitions(total_count=wanted)}, timeout_ms=timeout_ms)
        log.warning("the clickstream topic grew to %d partitions: grew the state changelog %s to match", wanted, topic)
    return []


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (murmur2 of the key, as the Java client and
    kafka-python do), e.g. a user's events keyed by ``user_id``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def group_committed_total(settings: KafkaSettings) -> int | None:
    """The group's committed offsets on the clickstream topic, summed over partitions; None while the group
    coordinator cannot answer (it is still loading after a start)."""
    admin = KafkaAdminClient(**settings.client_options())
    try:
        offsets = admin.list_group_offsets(settings.group_id).get(settings.group_id, {})
    except KafkaError:
        return None
    finally:
        admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == settings.clickstream_topic)


def make_producer(settings: KafkaSettings, **extra: Any) -> KafkaProducer:
    return KafkaProducer(
        **settings.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        retry_backoff_ms=settings.retry_backoff_ms,
        batch_size=settings.batch_size,
        compression_type=settings.compression_type,
        max_request_size=settings.max_request_size,
        **extra,
    )


def polled_records(polled: Mapping[TopicPartition, Sequence[Any]]) -> list[SourceRecord]:
    """A poll's messages as the core's records: partition by partition, each in offset order (the order a
    recovering worker replays them in too)."""
    return [
        SourceRecord(
            value=m.value if m.value is not None else b"",
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            timestamp_ms=m.timestamp if m.timestamp is not None and m.timestamp >= 0 else None,
        )
        for tp in sorted(polled, key=lambda t: (t.topic, t.partition))
        for m in polled[tp]
    ]
