"""Exactly-once under crashes: a worker SIGKILLed at 20 random moments ends where an uninterrupted one does.

One recording (≥ 50,000 events, a few malformed ones mixed in) is produced once to a one-partition topic and
consumed twice with the same seed, by two consumer groups writing to topics of their own: once without
interruption, once by a worker killed with SIGKILL at 20 random points of its progress (mid-batch, mid-
transaction, mid-checkpoint, mid-recovery: wherever the kill lands) and restarted each time. Read with
``read_committed``, the two runs' decisions, rewards and dead letters must be the same messages in the same
order, and the final checkpoints (learners, bandit posterior, per-user state, open decisions, counters) equal.
One partition makes the order of processing, hence the learned state, a function of the input alone.
"""

from __future__ import annotations

import random
import time

import orjson
import pytest
from kafka_helpers import (
    committed_total,
    group_done,
    one_partition_copy,
    run_process_to_end,
    start_worker,
    wait_for,
)

from stream.app.recovery import state_key
from stream.app.settings import Settings
from stream.engine.checkpoint import read_snapshot, snapshot_path
from stream.io.file_source import read_file
from stream.kafka.topic_files import iter_topic, produce_values
from stream.simulator import simulate_to_file

pytestmark = pytest.mark.slow

KILLS = 20
WORKER_ENV = {
    "OFFERSTREAM_CHECKPOINT_EVERY_RECORDS": "4000",
    "OFFERSTREAM_KAFKA__MAX_POLL_RECORDS": "200",
}


def _outputs(settings: Settings) -> dict[str, list[bytes]]:
    k = settings.kafka
    topics = {"decisions": k.decisions_topic, "rewards": k.rewards_topic, "dead letters": k.dead_letter_topic}
    return {kind: [m.value for m in iter_topic(k, topic, 3)] for kind, topic in topics.items()}


def _final_state(settings: Settings) -> dict:
    """The final checkpoint's state, without the dedup window's changelog bookkeeping (which flush its ids went
    out in depends on where the restarts cut the batches; the ids themselves are compared) and the fleet's."""
    found = read_snapshot(snapshot_path(settings.state_dir, settings.kafka.group_id), state_key(settings))
    assert found is not None, "no final checkpoint"
    state = found[1]
    # and without the clock of the lessons on the model topic: the two runs are workers of their own groups,
    # and how many lessons carried the learning depends on where the kills cut the batches
    del state["fleet"]
    for part in state["partitions"].values():
        del part["recent_ids"]["groups"], part["recent_ids"]["next_group"]
    return state


def test_sigkill_at_20_random_points_changes_nothing(tmp_path, kafka_settings):
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=3, users=6000, seed=5, out=events)
    values = [r.value for r in read_file(events)]
    for i in range(0, len(values), 997):  # malformed input too: dead letters must be exactly-once as well
        values.insert(i, b'{"event_type": "add_to_cart", "ts": "yesterday"' if i % 2 else b"\xff\xfe not json")
    assert len(values) >= 50_000
    base = one_partition_copy(kafka_settings, "input")
    produce_values(base.kafka, base.kafka.clickstream_topic, values)

    calm = one_partition_copy(base, "calm", share_input=True, state_dir=tmp_path / "calm")
    run_process_to_end(calm, tmp_path / "calm.log", len(values), **WORKER_ENV)

    crashy = one_partition_copy(base, "crashy", share_input=True, state_dir=tmp_path / "crashy")
    log_crashy = tmp_path / "crashy.log"
    rng = random.Random(20)
    targets = sorted(rng.sample(range(1, len(values) - 1000), KILLS))
    kills = []
    for target in targets:
        worker = start_worker(crashy, crashy.state_dir, log_crashy, **WORKER_ENV)
        try:
            wait_for(lambda t=target: committed_total(crashy) >= t, timeout=300, every=0.02, what=f"offset {target}")
            time.sleep(rng.uniform(0.0, 0.4))  # land anywhere in the batch cycle, not just after a commit
            kills.append(committed_total(crashy))
        finally:
            worker.kill()
            worker.wait(timeout=30)
    assert not group_done(crashy, len(values)), "the crashy run finished before its last kill"
    run_process_to_end(crashy, log_crashy, len(values), **WORKER_ENV)
    log = log_crashy.read_text()

    calm_out, crashy_out = _outputs(calm), _outputs(crashy)
    for kind, want in calm_out.items():
        got = crashy_out[kind]
        assert len(got) == len(want), f"{kind}: {len(got)} messages after {KILLS} kills, {len(want)} without"
        assert got == want, f"{kind}: messages differ"
    decisions = [orjson.loads(v) for v in crashy_out["decisions"]]
    assert len(decisions) > 500 and len({d["decision_id"] for d in decisions}) == len(decisions)
    assert len(crashy_out["rewards"]) > 500 and len(crashy_out["dead letters"]) >= 60
    assert _final_state(crashy) == _final_state(calm)
    # the restarts must have exercised resuming from a checkpoint, not only replays from the start; how many
    # find one depends on how far each worker got between kills (timing: 9 and 10+ of 20 seen in CI), so the
    # bar is a quarter, checked after the outputs so that a miss here never hides a difference there
    restored = log.count("restored state")
    assert restored >= KILLS // 4, log[-3000:]
    print(f"killed at committed offsets {kills}; {restored} restarts resumed from a checkpoint")
