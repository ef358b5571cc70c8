"""A rebalance mid-stream (here: partitions added to the clickstream topic) loses no commit and stalls no worker.

kafka-python 3.0.12 could leave such a rejoin half done when a short poll timed out during it: the member
stopped heartbeating, kept fetching for its old assignment, failed every commit and was expelled. The source
works around it (``stream.kafka.source._finish_joins_in_flight``) and retries commits the rebalance refused.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewPartitions
from kafka_helpers import group_done

from stream.kafka.clients import make_producer
from stream.kafka.source import KafkaSource


def _produce(settings, n: int, start: int) -> None:
    producer = make_producer(settings.kafka)
    for i in range(start, start + n):
        producer.send(settings.kafka.clickstream_topic, value=b"{}", key=f"k{i}".encode())
    producer.flush()
    producer.close()


def _drain(source: KafkaSource, settings, want_total: int, want_partitions: int, timeout: float) -> int:
    """Poll and commit like the pipeline does, until the group has committed ``want_total`` messages."""
    consumed = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = source.next_batch(50)
        if batch:
            consumed += len(batch)
            source.commit(batch)
        elif len(source.consumer.assignment()) == want_partitions and group_done(settings, want_total):
            return consumed
    raise AssertionError(
        f"after {timeout:.0f}s: consumed {consumed}, assignment {sorted(source.consumer.assignment())}, "
        f"committed offsets short of {want_total}"
    )


def test_rebalance_on_new_partitions_completes_and_commits(kafka_settings):
    topic = kafka_settings.kafka.clickstream_topic
    # short polls make the rejoin span several of them; a short metadata age makes the new partitions seen soon
    source = KafkaSource(
        kafka_settings.kafka.model_copy(update={"poll_timeout_ms": 5}),
        metadata_max_age_ms=300,
    )
    try:
        _produce(kafka_settings, 30, 0)
        first = _drain(source, kafka_settings, 30, 3, timeout=60)

        admin = KafkaAdminClient(bootstrap_servers=kafka_settings.kafka.bootstrap_servers)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=6)})
        finally:
            admin.close()
        _produce(kafka_settings, 60, 30)  # keys spread over all six partitions
        second = _drain(source, kafka_settings, 90, 6, timeout=90)
    finally:
        source.close()
    # each message once: the second phase re-read nothing the first one committed
    assert first + second == 90
