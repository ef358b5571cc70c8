"""The stall watch's fresh reader on the real broker: it finds committed records from the worker's next offset
on, and none where read_committed has nothing to give (aborted records, transaction markers, the end)."""

from __future__ import annotations

import uuid

from kafka import KafkaProducer
from kafka.structs import TopicPartition
from kafka_helpers import one_partition_copy

from stream.kafka.source import KafkaSource
from stream.kafka.topic_files import produce_values


def _aborted_transaction(settings, count: int) -> None:
    producer = KafkaProducer(
        **settings.kafka.client_options(), transactional_id=f"probe-{uuid.uuid4().hex[:8]}", enable_idempotence=True
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(count):
            producer.send(settings.kafka.clickstream_topic, b'{"aborted": %d}' % i)
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close()


def test_the_fresh_reader_finds_committed_records_only(kafka_settings):
    settings = one_partition_copy(kafka_settings, "probe")
    tp = TopicPartition(settings.kafka.clickstream_topic, 0)
    produce_values(settings.kafka, tp.topic, [b'{"n": %d}' % i for i in range(10)])  # offsets 0-9
    _aborted_transaction(settings, 5)  # offsets 10-14 and the abort marker at 15: invisible under read_committed

    source = KafkaSource(settings.kafka)
    try:
        assert source._probe({tp: 0}) == {tp: 0}
        assert source._probe({tp: 7}) == {tp: 7}
        assert source._probe({tp: 10}) == {}  # only aborted records and a marker from here: nothing to process
        assert source._probe({tp: 16}) == {}  # at the end

        produce_values(settings.kafka, tp.topic, [b'{"n": 10}'])  # offset 16
        assert source._probe({tp: 10}) == {tp: 16}
    finally:
        source.close()
