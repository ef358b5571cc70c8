"""Recovery with the users on disk (``state_store = "rocksdb"``): the checkpoint holds the learners only, and a
start takes them back without replaying into partitions it does not hold (those come from their changelogs)."""

from __future__ import annotations

from factories import T0, event, records, settings
from kafka.structs import TopicPartition

from stream.app.build import build_processor, partition_store_dir
from stream.app.recovery import checkpoint_path, restore_state, state_key, write_checkpoint
from stream.engine.checkpoint import read_snapshot


def test_with_users_on_disk_the_checkpoint_holds_the_learners_only(tmp_path):
    s = settings(state_dir=str(tmp_path / "state"), state_store="rocksdb")
    core = build_processor(s, keep_changes=True)
    evs = [event(f"e{i}", "add_to_cart", ts=T0 + i * 60_000, user=f"u{i % 7}", cart_value=30.0) for i in range(40)]
    core.process_batch(records(evs, topic="clicks"))
    core.changelog()  # what the worker sends in each batch's transaction; makes the disk store durable
    assert (partition_store_dir(s) / "0").is_dir() and core.user_count == 7
    tp = TopicPartition("clicks", 0)
    write_checkpoint(core, {tp: 40}, s)
    found = read_snapshot(checkpoint_path(s), state_key(s))
    assert found is not None and found[1]["partitions"] is None and found[1]["learners"]

    restored_core, restored = restore_state(lambda: build_processor(s, keep_changes=True), s, lambda tps: {tp: 55})
    assert restored is not None and restored.replayed == 0  # 15 records later: not replayed, nothing to replay into
    assert restored_core.partitions == {}
    assert restored_core.policy.snapshot() == core.policy.snapshot()
    core.partition(0).close()
