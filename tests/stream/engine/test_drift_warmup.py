"""A partition that started empty knows every user as new: its users' long-window history features keep growing
for weeks, which the drift monitors must not take for drift. They watch a partition's examples only once it has
seen ``processing.drift_warmup_days`` of events; the learners learn from all of them either way."""

from __future__ import annotations

import functools

import orjson
from factories import settings, simulated_events

from models.behaviour.state import DAY_MS
from stream.app.build import build_processor
from stream.core.records import SourceRecord
from stream.engine.processor import Processor


@functools.cache
def events() -> tuple[dict, ...]:
    return tuple(simulated_events("stationary", days=3, users=600, seed=5))


def _run(warmup_days: float) -> Processor:
    core = build_processor(settings(processing={"drift_warmup_days": warmup_days}))
    records = [SourceRecord(orjson.dumps(e), "clicks", 0, i) for i, e in enumerate(events())]
    for i in range(0, len(records), 500):
        core.process_batch(records[i : i + 500])
    return core


def _examples(core: Processor, name: str) -> int:
    return int(core.learners[name].version.split("@")[1])


def test_the_drift_monitors_wait_until_the_partition_has_its_history():
    never, after_a_day, always = _run(30.0), _run(1.0), _run(0.0)
    for name in ("intent", "segments", "price_sensitivity"):
        learned = _examples(always, name)
        assert _examples(never, name) == _examples(after_a_day, name) == learned > 50, name  # all learned
        assert never.learners[name].drift.n == 0, name
        assert 0 < after_a_day.learners[name].drift.n < always.learners[name].drift.n, name
    started = min(e["ts"] for e in events())
    assert always.partitions[0].tracker.started_ms == started


def test_a_partition_restored_from_its_changelog_keeps_its_start():
    rebuilt = build_processor(settings(), keep_changes=True)
    original = build_processor(settings(), keep_changes=True)
    records = [SourceRecord(orjson.dumps(e), "clicks", 0, i) for i, e in enumerate(events()[:2000])]
    original.process_batch(records)
    rebuilt.partition(0).apply((o.key, o.raw) for o in original.changelog())
    tracker = rebuilt.partitions[0].tracker
    assert tracker.started_ms == original.partitions[0].tracker.started_ms == min(e["ts"] for e in events())
    assert not tracker.warm(tracker.started_ms + DAY_MS - 1, DAY_MS) and tracker.warm(
        tracker.started_ms + DAY_MS, DAY_MS
    )
