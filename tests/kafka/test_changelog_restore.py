"""A partition's state is rebuilt at the group's committed offset even while the changelog's markers are in flight.

A transaction's commit makes its records readable partition by partition: the group's offsets can show the
previous owner's last batch before the state changelog does. Here that moment is held open: the changelog's
last batch sits in an open transaction while the group's offset already includes it. The rebuild waits for the
changelog (and reads it to the committed offset once the transaction commits); a changelog that never gets
there (the transaction aborted) is used as it is after the wait, with the warning.
"""

from __future__ import annotations

import logging
import threading

import orjson
import pytest
from factories import T0, event
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.app.build import build_processor
from stream.app.partitions import PartitionStates
from stream.core.records import SourceRecord
from stream.kafka import changelog as changelog_module

pytestmark = pytest.mark.kafka

EVENTS = 10
FIRST = 6  # the changelog of the first 6 records is committed; that of the last 4 waits in a transaction


def _records(settings) -> list[SourceRecord]:
    topic = settings.kafka.clickstream_topic
    evs = [event(f"e{i}", "add_to_cart", ts=T0 + i * 1000, user=f"u{i % 4}", cart_value=9.0 + i) for i in range(EVENTS)]
    return [SourceRecord(orjson.dumps(e), topic, 0, i) for i, e in enumerate(evs)]


def _changelog(core, batch) -> list:
    core.process_batch(batch)
    return [o for o in core.changelog() if o.partition == 0]


def _setup(kafka_settings):
    """A worker's changelog of partition 0: the first batch committed, the last one in a transaction left open,
    and the group's offset already past both. Returns the open transaction's producer and the worker's core."""
    k = kafka_settings.kafka
    worker = build_processor(kafka_settings, keep_changes=True)
    records = _records(kafka_settings)
    producer = KafkaProducer(**k.client_options(), transactional_id=f"{k.group_id}-previous-owner")
    producer.init_transactions()
    for batch, commit in ((records[:FIRST], True), (records[FIRST:], False)):
        producer.begin_transaction()
        for o in _changelog(worker, batch):
            producer.send(k.state_changelog_topic, key=o.key, value=o.raw, partition=0)
        producer.flush()
        if commit:
            producer.commit_transaction()
    group = KafkaConsumer(**k.client_options(), group_id=k.group_id, enable_auto_commit=False)
    group.commit({TopicPartition(k.clickstream_topic, 0): OffsetAndMetadata(EVENTS, "", -1)})
    group.close()
    return producer, worker


def _as_json(state: dict) -> bytes:
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)  # NaN (a feature not known yet) as null: comparable


def _rebuild(kafka_settings):
    k = kafka_settings.kafka
    core = build_processor(kafka_settings, keep_changes=True)
    tp = TopicPartition(k.clickstream_topic, 0)
    hook = PartitionStates(core, k, lambda: {tp})
    return hook, core, hook({tp: EVENTS})


def test_the_rebuild_waits_for_the_changelog_to_reach_the_committed_offset(kafka_settings, caplog):
    producer, worker = _setup(kafka_settings)
    later = threading.Timer(2.0, producer.commit_transaction)  # the markers land two seconds after the offsets
    later.start()
    try:
        with caplog.at_level(logging.INFO):
            _, core, resume = _rebuild(kafka_settings)
    finally:
        later.join()
        producer.close()
    assert resume == {}
    assert core.partitions[0].next_offset == EVENTS, "the state misses the previous owner's last batch"
    assert _as_json(core.partitions[0].snapshot()) == _as_json(worker.partitions[0].snapshot())
    assert "waited" in caplog.text and "is missing" not in caplog.text


def test_a_changelog_that_never_gets_there_is_used_after_the_wait_and_reported(kafka_settings, caplog, monkeypatch):
    monkeypatch.setattr(changelog_module, "SETTLE_S", 1.0)
    producer, _ = _setup(kafka_settings)
    producer.abort_transaction()  # the last batch's state is never committed
    producer.close()
    with caplog.at_level(logging.INFO):
        _, core, resume = _rebuild(kafka_settings)
    assert resume == {}
    assert core.partitions[0].next_offset == FIRST
    assert f"from the {EVENTS - FIRST} records between is missing" in caplog.text


def test_records_committed_between_the_end_and_the_first_read_are_not_read_past(kafka_settings, caplog, monkeypatch):
    """The markers land just after the restore took the changelog's end: the first poll brings the last batch
    beyond that end. It must be read again once the restore reads on, not skipped."""
    monkeypatch.setattr(changelog_module, "SETTLE_S", 5.0)
    producer, worker = _setup(kafka_settings)
    open_transaction = [producer]

    class MarkersLandAfterTheEnd(KafkaConsumer):
        def end_offsets(self, partitions):
            ends = super().end_offsets(partitions)
            while open_transaction:
                open_transaction.pop().commit_transaction()
            return ends

    monkeypatch.setattr(changelog_module, "KafkaConsumer", MarkersLandAfterTheEnd)
    try:
        with caplog.at_level(logging.INFO):
            _, core, resume = _rebuild(kafka_settings)
    finally:
        producer.close()
    assert resume == {}
    assert "is missing" not in caplog.text
    assert core.partitions[0].next_offset == EVENTS, "the state skipped the previous owner's last batch"
    assert _as_json(core.partitions[0].snapshot()) == _as_json(worker.partitions[0].snapshot())
