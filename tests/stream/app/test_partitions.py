"""On assignment the worker holds exactly the owned partitions' states, each at the group's committed offset.

The changelog is played from memory here (the real reader is tested against a broker in tests/kafka/): what
is kept, what is rebuilt, where reading resumes when the changelog is ahead of the commit (at-least-once) and
what is reported when it is behind.
"""

from __future__ import annotations

import logging

import orjson
import pytest
from factories import T0, event, settings
from kafka.structs import TopicPartition

from stream.app import partitions as module
from stream.app.build import build_processor
from stream.app.partitions import PartitionStates
from stream.core.records import SourceRecord
from stream.kafka.changelog import RestoreReport

TOPIC = "offerstream.clickstream"  # the default clickstream topic: the hook names partitions of it


def _tp(p: int) -> TopicPartition:
    return TopicPartition(TOPIC, p)


@pytest.fixture
def changelog(monkeypatch):
    """Changelog records per partition, served to the hook instead of a broker's."""
    logs: dict[int, list] = {}

    def read(settings, parts, apply, **_):
        report = RestoreReport(records=dict.fromkeys(parts, 0))
        for p in parts:
            if logs.get(p):
                apply(p, logs[p])
                report.records[p] = len(logs[p])
        return report

    monkeypatch.setattr(module, "read_changelog", read)
    return logs


def _worked(partitions: dict[int, int]):
    """A core that processed ``n`` add-to-cart events on each partition, and the changelog it wrote."""
    s = settings()
    core = build_processor(s, keep_changes=True)
    for p, n in partitions.items():
        evs = [
            event(f"p{p}-{i}", "add_to_cart", ts=T0 + i * 1000, user=f"u{p}-{i % 3}", cart_value=9.0) for i in range(n)
        ]
        core.process_batch([SourceRecord(orjson.dumps(e), TOPIC, p, i) for i, e in enumerate(evs)])
    written = core.changelog()
    return s, core, {p: [(o.key, o.raw) for o in written if o.partition == p] for p in partitions}


def test_current_states_are_kept_others_rebuilt_and_unowned_ones_dropped(changelog):
    s, old, logs = _worked({0: 10, 1: 12, 2: 5})
    changelog.update(logs)
    core = build_processor(s, keep_changes=True)
    core.restore(orjson.loads(orjson.dumps(old.snapshot())))  # holds 0, 1 and 2 at offsets 10, 12 and 5
    hook = PartitionStates(core, s.kafka, lambda: {_tp(0), _tp(1)})
    kept = core.partitions[0]
    resume = hook({_tp(0): 10, _tp(1): 15})  # partition 1 moved on elsewhere since: rebuilt from its changelog
    assert resume == {}
    assert core.partitions[0] is kept and hook.restored == {0: "memory", 1: "changelog"}
    assert sorted(core.partitions) == [0, 1]  # partition 2 is not owned any more
    assert core.partitions[1].store.user_count == 3


def test_a_changelog_ahead_of_the_commit_resumes_after_what_the_state_holds(changelog):
    s, _, logs = _worked({0: 10})
    changelog.update(logs)
    core = build_processor(s, keep_changes=True)
    resume = PartitionStates(core, s.kafka, lambda: {_tp(0)})({_tp(0): 7})  # at-least-once: flushed, not committed
    assert resume == {_tp(0): 10} and core.partitions[0].next_offset == 10


def test_a_changelog_behind_the_commit_is_used_and_reported(changelog, caplog):
    s, _, logs = _worked({0: 10})
    changelog.update(logs)
    core = build_processor(s, keep_changes=True)
    hook = PartitionStates(core, s.kafka, lambda: {_tp(0)})
    with caplog.at_level(logging.WARNING):
        assert hook({_tp(0): 25}) == {}
    assert "from the 15 records between is missing" in caplog.text
    assert core.partitions[0].store.user_count == 3
