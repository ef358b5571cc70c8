"""Hostile input at the worker, through the real broker: every bad message is in the dead-letter topic with the
reason it is owed, every good one is processed, a repeated event_id is processed once, nothing crashes.

``OFFERSTREAM_FUZZ_MESSAGES`` messages (CI: 10,000; ``make fuzz``: 100,000), one partition so that the owed
fate of each offset is known (which copy of a repeated event counts as the first depends on order)."""

from __future__ import annotations

import base64
import os
from collections import Counter

import orjson
from hostile import hostile_corpus
from kafka_helpers import one_partition_copy, run_until_consumed

from stream.kafka.topic_files import iter_topic, produce_values

FUZZ_MESSAGES = int(os.environ.get("OFFERSTREAM_FUZZ_MESSAGES", "10000"))


def test_a_hostile_stream_through_the_worker(tmp_path, kafka_settings):
    settings = one_partition_copy(kafka_settings, "fuzz", state_dir=tmp_path / "state")
    messages, owed = hostile_corpus(FUZZ_MESSAGES, seed=29)
    produce_values(settings.kafka, settings.kafka.clickstream_topic, messages)

    result = run_until_consumed(settings, len(messages), timeout=600)

    dead = {}
    for m in iter_topic(settings.kafka, settings.kafka.dead_letter_topic, 3):
        body = orjson.loads(m.value)
        assert body["offset"] not in dead, f"offset {body['offset']} dead-lettered twice"
        assert base64.b64decode(body["value_b64"]) == messages[body["offset"]], "the dead letter lost the bytes"
        dead[body["offset"]] = body["reason"]
    got = [dead.get(i, "valid") for i in range(len(messages))]
    wrong = [(i, o, g) for i, (o, g) in enumerate(zip(owed, got, strict=True)) if o != "any" and o != g]
    assert not wrong, f"{len(wrong)} of {len(messages)} messages met the wrong fate, first {wrong[:5]}"
    assert "processing_error" not in got
    processor = result.processor
    assert processor.counters["events"] == got.count("valid")
    assert processor.counters["records"] == len(messages)
    print(f"fates of {len(messages)} messages: {dict(Counter(got))}")
