"""Input the broker deleted before the worker read it (retention, or a delete-records call) is reported, not
skipped in silence: the client moves to the partition's new first offset without a word, which once left a
benchmark's worker waiting for ever for records that were gone."""

from __future__ import annotations

import logging
import time

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.structs import TopicPartition
from kafka_helpers import one_partition_copy, suffixed_topics

from stream.kafka.clients import DEAD_LETTER_MAX_BYTES, ensure_topics
from stream.kafka.source import KafkaSource
from stream.kafka.topic_files import produce_values


def _delete_before(settings, tp: TopicPartition, offset: int) -> None:
    admin = KafkaAdminClient(**settings.kafka.client_options())
    try:
        admin.delete_records({tp: offset})
    finally:
        admin.close()


def _lost_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "deleted by the broker" in r.getMessage()
    ]


def test_a_gap_the_broker_deleted_is_reported_as_lost_input(kafka_settings, caplog):
    settings = one_partition_copy(kafka_settings, "deleted-gap")
    tp = TopicPartition(settings.kafka.clickstream_topic, 0)
    produce_values(settings.kafka, tp.topic, [b'{"n": %d}' % i for i in range(10)])  # offsets 0-9

    source = KafkaSource(settings.kafka)
    try:
        assert source.start_offsets() == {tp: 0}
        _delete_before(settings, tp, 4)  # before the first fetch: the client resets to 4 without a word
        caplog.set_level(logging.WARNING, logger="stream.kafka.source")
        records = []
        deadline = time.monotonic() + 30
        while len(records) < 6 and time.monotonic() < deadline:
            records += source.next_batch(100)
        assert [r.offset for r in records] == list(range(4, 10))
        assert source.take_deleted_unread() == 4
        assert source.take_deleted_unread() == 0  # taken once
        assert len(_lost_warnings(caplog)) == 1
        assert "offsets 0 to 3" in _lost_warnings(caplog)[0]
    finally:
        source.close()


def test_the_stall_probe_reports_a_deleted_start_and_reads_on_from_the_new_first_offset(kafka_settings, caplog):
    settings = one_partition_copy(kafka_settings, "deleted-probe")
    tp = TopicPartition(settings.kafka.clickstream_topic, 0)
    produce_values(settings.kafka, tp.topic, [b'{"n": %d}' % i for i in range(10)])  # offsets 0-9
    _delete_before(settings, tp, 6)

    source = KafkaSource(settings.kafka)
    caplog.set_level(logging.WARNING, logger="stream.kafka.source")
    try:
        assert source._probe({tp: 2}) == {tp: 6}  # records remain after the deleted ones: a stall, not idleness
        assert source.take_deleted_unread() == 4
        assert source._read[tp] == 6  # reported once: the worker's next offset is where the partition starts
        assert source._probe({tp: 6}) == {tp: 6}
        assert source.take_deleted_unread() == 0

        _delete_before(settings, tp, 10)  # everything gone, as the benchmark's time retention did
        assert source._probe({tp: 6}) == {}  # nothing left to read: idle, but the loss is said
        assert source.take_deleted_unread() == 4
        assert len(_lost_warnings(caplog)) == 2
    finally:
        source.close()


def test_topics_can_be_created_with_configs(kafka_settings):
    settings = one_partition_copy(kafka_settings, "deleted-configs")
    fresh = suffixed_topics(settings.kafka, "kept")
    created = ensure_topics(fresh, configs={"retention.ms": "-1"})
    assert sorted(created) == sorted(
        [fresh.clickstream_topic, fresh.decisions_topic, fresh.rewards_topic, fresh.dead_letter_topic]
    )
    admin = KafkaAdminClient(**fresh.client_options())
    try:
        # the configs set on each topic (the default filter: modified ones); empty until the broker has the topic
        deadline = time.monotonic() + 30
        while True:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in created])
            if all(described["topic"][name] for name in created) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        admin.close()
    for name in created:
        assert described["topic"][name]["retention.ms"]["value"] == "-1"
    assert described["topic"][fresh.dead_letter_topic]["max.message.bytes"]["value"] == str(DEAD_LETTER_MAX_BYTES)
