"""`offerstream record` dumps a topic with offsets, timestamps and exact bytes; replay reads it back."""

from __future__ import annotations

import time

import orjson
import pytest
from click.testing import CliRunner
from kafka_helpers import suffixed_topics

from stream.cli import main
from stream.io.file_source import read_file
from stream.kafka.errors import DeliveryError
from stream.kafka.topic_files import iter_topic, produce_values
from stream.simulator import simulate_to_file


def test_record_then_replay_sees_exactly_what_the_topic_holds(tmp_path, kafka_settings):
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=1, users=200, seed=3, out=events)
    values = [r.value for r in read_file(events)]
    values[5:5] = [b"\xff\xfe binary", b"{broken"]
    topic = kafka_settings.kafka.clickstream_topic
    produce_values(kafka_settings.kafka, topic, values)

    out = tmp_path / "rec.jsonl.gz"
    result = CliRunner().invoke(
        main,
        [
            "record",
            "--topic",
            topic,
            "--out",
            str(out),
            "--idle-timeout",
            "1",
            "--bootstrap-servers",
            kafka_settings.kafka.bootstrap_servers,
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output.strip().splitlines()[-1])["messages"] == len(values)

    recorded = list(read_file(out))
    live = list(iter_topic(kafka_settings.kafka, topic, 1))
    assert [(r.partition, r.offset, r.value, r.key, r.timestamp_ms) for r in recorded] == [
        (m.partition, m.offset, m.value, m.key, m.timestamp) for m in live
    ]
    assert sorted(r.value for r in recorded) == sorted(values)

    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(out),
            "--decisions",
            str(tmp_path / "d.jsonl"),
            "--dead-letters",
            str(tmp_path / "x.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    dead = [orjson.loads(x) for x in (tmp_path / "x.jsonl").read_bytes().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["invalid_json", "invalid_json"]
    assert all(d["topic"] == topic and d["timestamp_ms"] is not None for d in dead)


def test_produce_stamps_plausible_times_and_never_loses_a_message_in_silence(kafka_settings):
    """Messages with times the broker would refuse as timestamps still arrive (stamped by the broker); one the
    broker refuses outright (too large) makes produce fail, saying so, instead of vanishing."""
    topic = kafka_settings.kafka.clickstream_topic
    now_ms = int(time.time() * 1000)
    stamps = [1_767_600_000_000, 4_102_444_800_001, -5, 0, now_ms + 7_200_000]
    values = [orjson.dumps({"event_id": f"e{i}", "user_id": "u", "ts": ts}) for i, ts in enumerate(stamps)]
    assert produce_values(kafka_settings.kafka, topic, values) == len(values)
    got = {orjson.loads(m.value)["event_id"]: m.timestamp for m in iter_topic(kafka_settings.kafka, topic, 2)}
    assert got["e0"] == stamps[0] and got["e3"] == 0  # plausible: the event's own time
    for refused in ("e1", "e2", "e4"):  # far future or negative: the broker's time on arrival
        assert abs(got[refused] - now_ms) < 600_000, (refused, got[refused])

    too_large = b"x" * 2_000_000  # over the broker's message.max.bytes (1 MB), under the producer's cap
    # (how many fail with it depends on batching: the idempotent producer aborts what shares its batch)
    with pytest.raises(DeliveryError, match=r"[123] of 3 messages to .* not acknowledged, first: MessageSizeTooLarge"):
        produce_values(kafka_settings.kafka, topic, [values[0], too_large, values[0]])


def test_producing_messages_older_than_the_topics_retention_warns(tmp_path, kafka_settings):
    """A recording's events keep their (old) times as timestamps: on a topic with a week's time retention the
    broker deletes them within minutes, so `offerstream produce` says so, and `topics --retention-ms -1` makes
    topics that keep them."""
    base = kafka_settings.kafka
    week = suffixed_topics(base, "week")
    kept = suffixed_topics(base, "kept")
    servers = ["--bootstrap-servers", base.bootstrap_servers]
    for settings, retention in ((week, "604800000"), (kept, "-1")):
        result = CliRunner().invoke(
            main,
            ["topics", "--retention-ms", retention, *servers],
            env={
                "OFFERSTREAM_KAFKA__CLICKSTREAM_TOPIC": settings.clickstream_topic,
                "OFFERSTREAM_KAFKA__DECISIONS_TOPIC": settings.decisions_topic,
                "OFFERSTREAM_KAFKA__REWARDS_TOPIC": settings.rewards_topic,
                "OFFERSTREAM_KAFKA__DEAD_LETTER_TOPIC": settings.dead_letter_topic,
            },
        )
        assert result.exit_code == 0, result.output
        assert settings.clickstream_topic in orjson.loads(result.stdout.strip().splitlines()[-1])["created"]

    now_ms = int(time.time() * 1000)
    old = tmp_path / "old.jsonl"
    old.write_bytes(orjson.dumps({"event_id": "e0", "user_id": "u", "ts": now_ms - 30 * 86_400_000}) + b"\n")
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_bytes(orjson.dumps({"event_id": "e1", "user_id": "u", "ts": now_ms - 60_000}) + b"\n")

    def produce(path, topic):
        result = CliRunner().invoke(main, ["produce", str(path), "--topic", topic, *servers])
        assert result.exit_code == 0, result.output
        return result.stderr

    warned = produce(old, week.clickstream_topic)
    assert "30.0 days ago" in warned and "retention.ms (7 days)" in warned
    assert produce(fresh, week.clickstream_topic) == ""
    assert produce(old, kept.clickstream_topic) == ""
