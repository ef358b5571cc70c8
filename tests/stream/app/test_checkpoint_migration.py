"""An upgrade keeps every user: checkpoints written by version 2 (before state by input partition) are migrated.

The fixtures were written by the code of commit 8ab2d19 (the last before state by partition) from a simulated
shop (1 day, 250 shoppers, seed 4) whose first 540 of 901 events went through the core, on one partition and on
three (each user on the partition Kafka's default partitioner gives its id).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from factories import processor, simulated_events

from bandits.context import DEFAULT_CONTEXT, DEFAULT_LIFT_CONTEXT
from stream.app.migrate import migrate_checkpoint
from stream.core.records import SourceRecord
from stream.kafka.clients import partition_for_key

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CUT = 540


def _load(name: str) -> tuple[dict, dict]:
    data = orjson.loads((FIXTURES / name).read_bytes())
    return data["offsets"], data["state"]


def _records(events: list[dict], partitions: int, start: dict[int, int] | None = None) -> list[SourceRecord]:
    offsets = dict(start or dict.fromkeys(range(partitions), 0))
    out = []
    for e in events:
        p = partition_for_key(e["user_id"].encode(), partitions)
        out.append(SourceRecord(orjson.dumps(e), "clicks", p, offsets[p]))
        offsets[p] += 1
    return out


def test_a_one_partition_checkpoint_continues_exactly_as_if_never_upgraded():
    events = simulated_events("abrupt", days=1, users=250, seed=4)
    offsets, state = _load("checkpoint-v2-1p.json")
    assert state["version"] == 2 and offsets == {"clicks:0": CUT}
    plain = {  # the policy that wrote the fixture: conservative mode and the context's order came later
        "conservative": False,
        "context": ["intent_snapshot", "intent_online", "lift_snapshot", *DEFAULT_CONTEXT[1:-3], "arm:buy_snapshot"],
        "lift_context": ["lift_snapshot", *DEFAULT_LIFT_CONTEXT[:-1]],
    }
    migrated = processor(seed=3, policy=plain)
    migrated.restore(orjson.loads(orjson.dumps(migrate_checkpoint(offsets, state))))
    got = [o.value() for o in migrated.process_batch(_records(events[CUT:], 1, {0: CUT}))]
    whole = processor(seed=3, policy=plain)
    records = _records(events, 1)
    for i in range(0, CUT, 100):
        whole.process_batch(records[i : min(i + 100, CUT)])
    want = [o.value() for o in whole.process_batch(records[CUT:])]
    assert len(want) > 10 and got == want


def test_a_three_partition_checkpoint_puts_every_user_in_the_partition_of_its_key():
    offsets, state = _load("checkpoint-v2-3p.json")
    v3 = migrate_checkpoint(offsets, state)
    core = processor(seed=3)
    core.restore(orjson.loads(orjson.dumps(v3)))
    assert sorted(core.partitions) == [0, 1, 2]
    users = {
        p: {u["user_id"] for u in part.snapshot()["tracker"]["store"]["users"]} for p, part in core.partitions.items()
    }
    assert sum(map(len, users.values())) == len(state["tracker"]["store"]["users"]) == core.user_count
    assert all(partition_for_key(u.encode(), 3) == p for p, us in users.items() for u in us)
    assert core.open_decisions == len(state["ledger"]["open"]) > 0
    for p, part in core.partitions.items():
        assert part.next_offset == offsets[f"clicks:{p}"]
        assert part.watermark_ms == state["tracker"]["source_watermarks"][str(p)]
        assert all(partition_for_key(d.user_id.encode(), 3) == p for d in part.ledger._open.values())
    events = simulated_events("abrupt", days=1, users=250, seed=4)
    starts = {p: offsets[f"clicks:{p}"] for p in range(3)}
    out = core.process_batch(_records(events[CUT:], 3, starts))  # goes on without a hitch
    assert any(o.kind.value == "decision" for o in out)
