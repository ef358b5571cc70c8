"""Malformed and contract-breaking messages land in the dead-letter topic; good events around them go on."""

from __future__ import annotations

import base64

import orjson
from kafka_helpers import run_until_consumed

from stream.kafka.clients import make_producer
from stream.kafka.topic_files import iter_topic

T0 = 1_767_600_000_000


def test_bad_messages_are_dead_lettered_with_reasons_and_exact_bytes(kafka_settings):
    good = [
        orjson.dumps(
            {
                "event_id": f"g{i}",
                "ts": T0 + i,
                "user_id": f"u{i}",
                "session_id": f"s{i}",
                "type": "add_to_cart",
                "price": 9.5,
            }
        )
        for i in range(20)
    ]
    bad = {
        b"\x00\x01 binary junk": "invalid_json",
        b"{not json": "invalid_json",
        b"42": "not_an_object",
        orjson.dumps({"event_id": "b1", "ts": T0, "user_id": "u", "type": "beam_me_up"}): "contract_violation",
        orjson.dumps({"event_id": "b2", "ts": T0, "user_id": "u", "type": "add_to_cart", "price": -10}): "absurd_value",
        orjson.dumps(
            {"event_id": "b3", "ts": T0 + 40 * 365 * 86_400_000, "user_id": "u", "type": "page_view"}
        ): "timestamp_out_of_range",
        orjson.dumps(
            {"event_id": "b4", "ts": T0, "user_id": "u", "type": "page_view", "pad": "x" * 100_000}
        ): "oversized",
    }
    producer = make_producer(kafka_settings.kafka)
    stream = []
    for i, g in enumerate(good):
        stream.append(g)
        if i < len(bad):
            stream.append(list(bad)[i])
    for value in stream:
        producer.send(kafka_settings.kafka.clickstream_topic, value=value, key=b"k", timestamp_ms=T0)
    producer.flush()
    producer.close()

    run_until_consumed(kafka_settings, len(stream), timeout=90)

    dead = [
        (m, orjson.loads(m.value)) for m in iter_topic(kafka_settings.kafka, kafka_settings.kafka.dead_letter_topic, 2)
    ]
    assert len(dead) == len(bad)
    for message, body in dead:
        original = base64.b64decode(body["value_b64"])
        assert body["reason"] == bad[original], (original[:60], body["reason"], body["detail"])
        assert body["topic"] == kafka_settings.kafka.clickstream_topic and body["offset"] >= 0 and body["detail"]
        assert dict(message.headers)["offerstream.reason"] == body["reason"].encode()
    decisions = [
        orjson.loads(m.value) for m in iter_topic(kafka_settings.kafka, kafka_settings.kafka.decisions_topic, 2)
    ]
    assert sorted(d["event_id"] for d in decisions) == sorted(f"g{i}" for i in range(20))
