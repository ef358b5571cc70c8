"""State by input partition: each partition's state is a function of its own events, and its changelog rebuilds it.

A shop's events are spread over four partitions by user (as Kafka's default partitioner does with the user id
as key). Whatever order the partitions' records interleave in, every decision's behaviour features and every
reward are the same; and a partition state rebuilt from its changelog records alone (as a worker that is
assigned the partition does) continues exactly as the original.
"""

from __future__ import annotations

import random

import orjson
from factories import MINUTE, T0, event, processor, settings, simulated_events

from bandits.factory import make_policy
from models.behaviour.features import FEATURE_NAMES
from stream.core.records import OutputKind, SourceRecord
from stream.engine.partition_state import PartitionState
from stream.engine.processor import Processor
from stream.kafka.clients import partition_for_key

HOUR = 60 * MINUTE
PARTITIONS = 4


def partition_of(user_id: str, partitions: int = PARTITIONS) -> int:
    return partition_for_key(user_id.encode(), partitions)


def partitioned(events: list[dict]) -> dict[int, list[SourceRecord]]:
    """The events as Kafka would hold them: by partition, each in arrival order with its own offsets."""
    out: dict[int, list[SourceRecord]] = {p: [] for p in range(PARTITIONS)}
    for e in events:
        p = partition_of(e["user_id"])
        out[p].append(SourceRecord(orjson.dumps(e), "clicks", p, len(out[p])))
    return out


def interleaved(by_partition: dict[int, list[SourceRecord]], seed: int, chunk: int) -> list[SourceRecord]:
    """The partitions read in chunks of up to ``chunk`` records, in a random order (as a consumer fetches)."""
    rng = random.Random(seed)
    cursors = {p: 0 for p in by_partition}
    out: list[SourceRecord] = []
    while cursors:
        p = rng.choice(sorted(cursors))
        n = rng.randint(1, chunk)
        out.extend(by_partition[p][cursors[p] : cursors[p] + n])
        cursors[p] += n
        if cursors[p] >= len(by_partition[p]):
            del cursors[p]
    return out


def tracking_core(seed: int = 3) -> Processor:
    s = settings()
    return Processor(
        s.processing,
        make_policy(s.policy),
        seed=seed,
        partition_state=lambda p: PartitionState(p, s.processing, track_changes=True),
    )


def _by_event(outputs, kind: OutputKind, *fields: str) -> dict:
    return {
        o.body.get("event_id", o.body["decision_id"]): tuple(o.body[f] for f in fields)
        for o in outputs
        if o.kind is kind
    }


BEHAVIOUR = FEATURE_NAMES  # the features that depend on events alone


def test_behaviour_features_do_not_depend_on_how_partitions_interleave():
    events = simulated_events("abrupt", days=3, users=1_000, seed=7)
    by_partition = partitioned(events)
    assert all(len(r) > 100 for r in by_partition.values())
    seen = []
    for seed, chunk in ((1, 5), (2, 400), (3, 2_000)):
        core = processor(seed=3)
        outputs = [
            o for batch in _batches(interleaved(by_partition, seed, chunk), 250) for o in core.process_batch(batch)
        ]
        decisions = {
            o.body["event_id"]: (o.body["session_id"], {k: o.body["features"][k] for k in BEHAVIOUR})
            for o in outputs
            if o.kind is OutputKind.DECISION
        }
        purchases = sorted(
            (o.body["purchase_event_id"], o.body["decision_id"])
            for o in outputs
            if o.kind is OutputKind.REWARD and o.body["purchased"]
        )
        seen.append((orjson.dumps(decisions, option=orjson.OPT_SORT_KEYS), purchases))
    assert len(orjson.loads(seen[0][0])) > 50 and len(seen[0][1]) > 5
    assert seen[0] == seen[1] == seen[2]


def _batches(records: list[SourceRecord], size: int):
    for i in range(0, len(records), size):
        yield records[i : i + size]


def test_a_lagging_partition_keeps_its_sessions_open_until_its_own_time_moves_on():
    core = processor(processing={"session_ttl_s": 3600})
    slow = SourceRecord(orjson.dumps(event("a1", "add_to_cart", ts=T0, user="a", session="sa", price=5.0)), "t", 0, 0)
    fast = SourceRecord(orjson.dumps(event("b1", "page_view", ts=T0 + 10 * HOUR, user="b", session="sb")), "t", 1, 0)
    late = SourceRecord(
        orjson.dumps(event("a2", "checkout_start", ts=T0 + 5 * MINUTE, user="a", session="sa")), "t", 0, 1
    )
    out = core.process_batch([slow, fast, late])
    assert [o.body["event_id"] for o in out if o.kind is OutputKind.DECISION] == ["a1"]  # sa is still one session
    assert core.partition(0).store.get_session("sa") is not None and core.partition(1).watermark_ms == T0 + 10 * HOUR


def test_a_partition_rebuilt_from_its_changelog_continues_as_the_original():
    """Cut a run in two: the second half runs on a core whose partition states were rebuilt from the changelog
    records alone (the learners handed over as they were); its outputs equal the uninterrupted run's, byte for byte."""
    events = simulated_events("abrupt", days=2, users=300, seed=9)
    records = interleaved(partitioned(events), seed=4, chunk=50)
    cut = len(records) * 3 // 5
    whole = tracking_core()
    expected = [o.value() for batch in _batches(records, 200) for o in whole.process_batch(batch)]

    first = tracking_core()
    logs: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    got = []
    for batch in _batches(records[:cut], 200):
        got += [o.value() for o in first.process_batch(batch)]
        for p, part in first.partitions.items():
            logs[p].extend(part.flush())
    second = tracking_core()
    learned = orjson.loads(orjson.dumps(first.snapshot()))
    second.restore({**learned, "partitions": {}})  # the learners only: the partitions come from their changelogs
    for p, changes in logs.items():
        second.partition(p).apply(_compacted(changes))
    for batch in _batches(records[cut:], 200):
        got += [o.value() for o in second.process_batch(batch)]
    assert sum(len(c) for c in logs.values()) > 300
    assert got == expected
    for p in range(PARTITIONS):
        assert _content(second.partition(p)) == _content(whole.partition(p))


def _content(part: PartitionState) -> bytes:
    """A partition's state, whatever order its store's dicts were filled in (without the window's changelog
    bookkeeping: which groups its ids went out in depends on when it was flushed)."""
    data = part.snapshot()
    del data["recent_ids"]["groups"], data["recent_ids"]["next_group"]
    store = data["tracker"]["store"]
    store["users"].sort(key=lambda u: u["user_id"])
    store["sessions"].sort(key=lambda s: s["session_id"])
    return orjson.dumps(data)


def _compacted(changes: list) -> list:
    """What a compacted topic keeps: the last record of each key, in log order, tombstones dropped (as after
    ``delete.retention.ms``)."""
    last = {key: i for i, (key, _) in enumerate(changes)}
    return [c for i, c in enumerate(changes) if last[c[0]] == i and c[1] is not None]


def test_every_kind_of_partition_state_reaches_the_changelog():
    core = tracking_core()
    core.process_batch(
        [
            SourceRecord(orjson.dumps(e), "t", 0, i)
            for i, e in enumerate(
                [
                    event("e1", "add_to_cart", ts=T0, cart_value=40.0),
                    event("e2", "page_view", ts=T0 + MINUTE),
                    event("e3", "purchase", ts=T0 + 2 * MINUTE, revenue=40.0),
                ]
            )
        ]
    )
    kinds = {key[:2] for key, _ in core.partition(0).flush()}
    assert kinds >= {b"u:", b"s:", b"e:", b"w:"}
    assert core.partition(0).flush() == []  # nothing changed since
    core.process_batch(
        [
            SourceRecord(
                orjson.dumps(event("e4", "add_to_cart", ts=T0 + 3 * MINUTE, session="s2", cart_value=9.0)), "t", 0, 3
            )
        ]
    )
    changes = dict(core.partition(0).flush())
    assert any(k.startswith(b"d:") and v is not None for k, v in changes.items())


def test_a_resolved_decision_leaves_the_changelog_with_a_tombstone():
    core = tracking_core()
    add = event("e1", "add_to_cart", ts=T0, cart_value=40.0)
    core.process_batch([SourceRecord(orjson.dumps(add), "t", 0, 0)])
    opened = [k for k, v in core.partition(0).flush() if k.startswith(b"d:")]
    buy = event("e2", "purchase", ts=T0 + MINUTE, revenue=40.0)
    core.process_batch([SourceRecord(orjson.dumps(buy), "t", 0, 1)])
    closed = {k: v for k, v in core.partition(0).flush() if k.startswith(b"d:")}
    assert len(opened) == 1 and closed == {opened[0]: None}


def test_a_partition_state_on_disk_rebuilds_from_the_same_changelog(tmp_path):
    """The changelog is the store's, whatever the store: rebuilt into a RocksDB-backed state, the same content."""
    from models.behaviour.rocksdb_store import RocksDictStore

    events = simulated_events("abrupt", days=1, users=200, seed=2)
    core = tracking_core()
    changes: list = []
    for batch in _batches([SourceRecord(orjson.dumps(e), "t", 0, i) for i, e in enumerate(events)], 300):
        core.process_batch(batch)
        changes += core.partition(0).flush()
    s = settings()
    on_disk = PartitionState(0, s.processing, store=RocksDictStore(tmp_path / "p0"), track_changes=True)
    on_disk.apply(_compacted(changes))
    assert on_disk.store.user_count == core.partition(0).store.user_count > 50
    assert _content(on_disk) == _content(core.partition(0))
    on_disk.close()
