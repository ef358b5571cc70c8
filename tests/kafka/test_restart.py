"""A worker stopped with SIGTERM mid-stream and restarted loses no event and doubles no decision."""

from __future__ import annotations

import signal

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from kafka_helpers import group_done, log_tail, run_process_to_end, start_worker, wait_for

from stream.app.replay import replay_files
from stream.io.file_source import read_file
from stream.kafka.topic_files import iter_topic, produce_values
from stream.simulator import simulate_to_file

SMALL_BATCHES = {"OFFERSTREAM_KAFKA__MAX_POLL_RECORDS": "25"}  # the stop lands mid-stream


def _produced(settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def _decisions(settings) -> list[dict]:
    return [orjson.loads(m.value) for m in iter_topic(settings.kafka, settings.kafka.decisions_topic, 2)]


def test_sigterm_mid_stream_then_restart_loses_nothing(tmp_path, kafka_settings):
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=2, users=3000, seed=21, out=events)
    values = [r.value for r in read_file(events)]
    produce_values(kafka_settings.kafka, kafka_settings.kafka.clickstream_topic, values)

    state_dir = tmp_path / "state"
    first = start_worker(kafka_settings, state_dir, tmp_path / "w1.log", **SMALL_BATCHES)
    try:
        decisions_topic = kafka_settings.kafka.decisions_topic
        wait_for(lambda: _produced(kafka_settings, decisions_topic) > 0, timeout=90, every=0.02, what="a decision")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, log_tail(tmp_path / "w1.log")()
    finally:
        if first.poll() is None:
            first.kill()
    log1 = (tmp_path / "w1.log").read_text()
    assert "stopped cleanly" in log1, log1[-3000:]

    assert not group_done(kafka_settings, len(values)), "the first worker finished before the stop"
    resumed = kafka_settings.model_copy(update={"state_dir": state_dir})
    run_process_to_end(resumed, tmp_path / "w2.log", len(values), timeout=120, **SMALL_BATCHES)
    assert "restored state" in (tmp_path / "w2.log").read_text()

    got = _decisions(kafka_settings)
    unique = {d["decision_id"]: d for d in got}
    replay_files([events], kafka_settings, tmp_path / "exp.jsonl", tmp_path / "dl.jsonl")
    expected = {orjson.loads(line)["decision_id"] for line in (tmp_path / "exp.jsonl").read_bytes().splitlines()}
    assert set(unique) == expected and len(expected) > 50
    # A clean stop commits what it produced and hands its state on: nothing is even repeated.
    assert len(got) == len(unique)
