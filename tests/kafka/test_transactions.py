"""A batch whose transaction fails leaves nothing visible; the worker rebuilds its state and goes on exactly."""

from __future__ import annotations

from kafka_helpers import one_partition_copy, run_until_consumed

from stream.app.replay import replay_files
from stream.io.file_source import read_file
from stream.kafka.errors import TransactionAborted
from stream.kafka.topic_files import iter_topic, produce_values
from stream.kafka.transactions import KafkaTransaction
from stream.simulator import simulate_to_file


def test_an_aborted_batch_is_invisible_and_the_recovered_worker_matches_a_replay(tmp_path, kafka_settings, monkeypatch):
    settings = one_partition_copy(kafka_settings, "tx", state_dir=tmp_path / "state", checkpoint_every_records=3000)
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"max_poll_records": 100})})
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=1, users=3000, seed=8, out=events)
    values = [r.value for r in read_file(events)]
    produce_values(settings.kafka, settings.kafka.clickstream_topic, values)

    commit = KafkaTransaction.commit
    calls = {"n": 0, "aborted_outputs": 0}

    def failing_commit(self, offsets, group_metadata):
        calls["n"] += self.is_open  # count transactions that carry outputs
        if self.is_open and calls["n"] in (
            10,
            11,
            25,
        ):  # the 10th batch with outputs fails twice in a row (backoff grows), and a later one
            calls["aborted_outputs"] += 1
            self.abort()
            raise TransactionAborted("injected: the coordinator went away")
        commit(self, offsets, group_metadata)

    monkeypatch.setattr(KafkaTransaction, "commit", failing_commit)
    result = run_until_consumed(settings, len(values), timeout=180)
    assert result.recoveries == 3 and calls["aborted_outputs"] == 3

    replay_files([events], settings, tmp_path / "d.jsonl", tmp_path / "dl.jsonl", tmp_path / "r.jsonl")
    k = settings.kafka
    for topic, path in ((k.decisions_topic, "d.jsonl"), (k.rewards_topic, "r.jsonl")):
        got = [m.value for m in iter_topic(k, topic, 3)]
        want = (tmp_path / path).read_bytes().splitlines()
        assert len(got) == len(want) > 50, topic
        assert got == want, topic
    # read_uncommitted shows what the aborted transactions had written: they did reach the broker
    committed = sum(len(list(iter_topic(k, t, 3))) for t in (k.decisions_topic, k.rewards_topic))
    uncommitted = sum(
        len(list(iter_topic(k, t, 3, isolation_level="read_uncommitted"))) for t in (k.decisions_topic, k.rewards_topic)
    )
    assert uncommitted > committed
