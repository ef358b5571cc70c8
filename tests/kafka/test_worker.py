"""The worker against a real broker: simulated events in, exactly the expected decisions out."""

from __future__ import annotations

import uuid
from collections import Counter

import orjson
from kafka_helpers import run_until_consumed

from stream.app.replay import replay_files
from stream.kafka.topic_files import iter_topic, produce_files
from stream.simulator import simulate_to_file


def _expected(tmp_path, events_path, settings):
    replay_files([events_path], settings, tmp_path / "exp.jsonl", tmp_path / "exp-dl.jsonl")
    return [orjson.loads(line) for line in (tmp_path / "exp.jsonl").read_bytes().splitlines()]


def test_simulated_events_in_exactly_the_expected_decisions_out(tmp_path, kafka_settings):
    events = tmp_path / "events.jsonl.gz"
    stats = simulate_to_file("stationary", days=2, users=400, seed=5, out=events)
    total = produce_files(kafka_settings.kafka, kafka_settings.kafka.clickstream_topic, [events])
    assert total == stats["events"] > 1000

    result = run_until_consumed(kafka_settings, total)
    assert result.stats.records == total

    decisions = [
        orjson.loads(m.value) for m in iter_topic(kafka_settings.kafka, kafka_settings.kafka.decisions_topic, 2)
    ]
    expected = _expected(tmp_path, events, kafka_settings)
    assert len(decisions) == len(expected) > 20
    # Which events get a decision depends only on per-session state, so it matches the replay exactly.
    assert sorted(d["decision_id"] for d in decisions) == sorted(d["decision_id"] for d in expected)
    per_session = Counter(d["session_id"] for d in decisions)
    assert max(per_session.values()) == 1
    for d in decisions:
        assert 0 < d["propensity"] <= 1 and d["propensities"][d["offer"]] == d["propensity"]
        assert {
            "decision_id",
            "event_id",
            "user_id",
            "session_id",
            "ts",
            "offer",
            "policy",
            "model_versions",
            "scores",
        } <= set(d)
    dead = list(iter_topic(kafka_settings.kafka, kafka_settings.kafka.dead_letter_topic, 1))
    assert dead == []


def test_one_partition_gives_byte_identical_decisions_to_a_replay(tmp_path, bootstrap):
    from stream.app.settings import load_settings
    from stream.kafka.clients import ensure_topics

    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        env={},
        overrides={
            "seed": 4,
            "kafka": {
                "bootstrap_servers": bootstrap,
                "partitions": 1,
                "group_id": f"g1p{tag}",
                "clickstream_topic": f"c1p{tag}",
                "decisions_topic": f"d1p{tag}",
                "rewards_topic": f"r1p{tag}",
                "dead_letter_topic": f"x1p{tag}",
            },
        },
    )
    ensure_topics(settings.kafka)
    events = tmp_path / "events.jsonl"
    simulate_to_file("clear_winner", days=1, users=300, seed=9, out=events)
    total = produce_files(settings.kafka, settings.kafka.clickstream_topic, [events])
    run_until_consumed(settings, total)
    got = [m.value for m in iter_topic(settings.kafka, settings.kafka.decisions_topic, 2)]
    replay_files([events], settings, tmp_path / "exp.jsonl", tmp_path / "dl.jsonl")
    assert got == (tmp_path / "exp.jsonl").read_bytes().splitlines()
