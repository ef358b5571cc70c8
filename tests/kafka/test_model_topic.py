"""The model topic on the real broker: what a starting worker takes from it (the fleet's model and the lessons
after it, or its own checkpoint), and what a running worker folds in."""

from __future__ import annotations

import time

import orjson
import pytest
from factories import learned, simulated_events

from stream.app.build import build_processor
from stream.app.monitoring import WorkerMetrics
from stream.app.settings import Settings
from stream.app.shared_learning import SharedLearning
from stream.core.records import SourceRecord
from stream.engine.processor import Processor
from stream.kafka.clients import partition_for_key
from stream.kafka.model_topic import ModelRecord
from stream.kafka.sink import KafkaSink

pytestmark = pytest.mark.kafka


def _partition(event: dict) -> int:
    return partition_for_key(event["user_id"].encode(), 4)


def _teach(core: Processor, events: list[dict], first_offset: int = 0) -> None:
    """Each event in its user's partition, as the workers of a fleet read them."""
    for i, e in enumerate(events):
        core.process(SourceRecord(orjson.dumps(e), "clicks", _partition(e), first_offset + i))


def _publish(settings: Settings, *records: ModelRecord) -> None:
    sink = KafkaSink(settings.kafka)
    try:
        sink.write([r.output() for r in records])
        sink.flush()
    finally:
        sink.close()


def _starting(settings: Settings, worker: str, saved: dict | None = None, replayed_gap: bool = True):
    core = build_processor(settings)
    learning = SharedLearning(core, lambda: build_processor(settings), settings.kafka, worker)
    try:
        how = learning.start(saved, replayed_gap=replayed_gap)
    finally:
        learning.close()
    return core, learning, how


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return simulated_events("stationary", days=2, users=1500, seed=6)


def test_a_new_worker_starts_from_the_fleets_model_and_the_lessons_after_it(kafka_settings, events):
    a, b, whole = (build_processor(kafka_settings) for _ in range(3))
    _teach(whole, events)
    of_a = [e for e in events if _partition(e) < 2]  # worker a owns partitions 0 and 1, b the others
    of_b = [e for e in events if _partition(e) >= 2]
    _teach(a, of_a)
    _teach(b, of_b[: len(of_b) // 2])
    a1, b1 = a.lesson(), b.lesson()
    a.fold(b1)
    model = ModelRecord("model", "a", 1, 0, a.whole_lesson(), {"a": 1, "b": 1})
    _teach(b, of_b[len(of_b) // 2 :], len(of_b) // 2)
    b2 = b.lesson()
    _publish(
        kafka_settings,
        ModelRecord("lesson", "a", 1, 0, a1),
        ModelRecord("lesson", "b", 1, 0, b1),
        model,
        ModelRecord("lesson", "b", 2, 0, b2),
    )
    core, learning, how = _starting(kafka_settings, "c")
    assert "fleet's model" in how and "1 lessons after it" in how
    assert learning.clock == {"a": 1, "b": 2}
    assert learned(core) == learned(whole)  # every example learned once, none twice
    assert core.lesson() is None  # what it started from is nobody's new lesson


def test_a_restarted_worker_keeps_its_checkpoint_unless_another_worker_learned_since(kafka_settings, events):
    a = build_processor(kafka_settings)
    _teach(a, events[:2000])
    _publish(kafka_settings, ModelRecord("lesson", "a", 1, 0, a.lesson()))
    _teach(a, events[2000:3000], 2000)
    _publish(kafka_settings, ModelRecord("lesson", "a", 2, 0, a.lesson()))
    # a checkpoint written after lesson 1: its own lesson 2 is the replayed gap, nobody else learned
    _, learning, how = _starting(kafka_settings, "a", saved={"clock": {"a": 1}})
    assert how.startswith("the checkpoint")
    assert learning.clock == {"a": 2} and learning.seq == 2  # its next lesson is number 3
    # another worker's lesson since: the fleet's model instead
    b = build_processor(kafka_settings)
    _teach(b, events[3000:4000], 3000)
    _publish(kafka_settings, ModelRecord("lesson", "b", 1, 0, b.lesson()))
    _, learning, how = _starting(kafka_settings, "a", saved={"clock": {"a": 1}})
    assert "fleet's model" in how
    assert learning.clock == {"a": 2, "b": 1}


def test_a_checkpoint_of_learners_only_catches_up_from_its_own_lessons(kafka_settings, events):
    """``state_store = "rocksdb"``: the checkpoint holds the learners, and no gap is replayed into them."""
    a, whole = build_processor(kafka_settings), build_processor(kafka_settings)
    _teach(whole, events[:3000])
    _teach(a, events[:2000])
    _publish(kafka_settings, ModelRecord("lesson", "a", 1, 0, a.lesson()))
    checkpoint = a.snapshot(partitions=False)
    _teach(a, events[2000:3000], 2000)
    _publish(kafka_settings, ModelRecord("lesson", "a", 2, 0, a.lesson()))
    core = build_processor(kafka_settings)
    core.restore(checkpoint)
    learning = SharedLearning(core, lambda: build_processor(kafka_settings), kafka_settings.kafka, "a")
    try:
        how = learning.start({"clock": {"a": 1}}, replayed_gap=False)
    finally:
        learning.close()
    assert how == "the checkpoint (1 own lessons since, folded)"
    assert learned(core) == learned(whole)


def test_a_running_worker_folds_the_others_lessons_and_refuses_what_it_cannot_fold(kafka_settings, events):
    metrics = WorkerMetrics()
    core = build_processor(kafka_settings)
    learning = SharedLearning(core, lambda: build_processor(kafka_settings), kafka_settings.kafka, "a", metrics)
    b, whole = build_processor(kafka_settings), build_processor(kafka_settings)
    _teach(b, events[:3000])
    _teach(whole, events[:3000])
    try:
        learning.start(None, replayed_gap=False)
        _publish(
            kafka_settings,
            ModelRecord("lesson", "b", 1, int(time.time() * 1000), b.lesson()),
            ModelRecord("lesson", "c", 1, 0, {"policy": {"policy": "another"}}),
        )
        deadline = time.monotonic() + 30
        while learning.folded + learning.refused < 2 and time.monotonic() < deadline:
            learning.fold_new()
            time.sleep(0.1)
        assert (learning.folded, learning.refused) == (1, 1)
        assert learning.clock == {"b": 1, "c": 1}
        assert learned(core) == learned(whole)
        assert metrics.lessons.labels("folded")._value.get() == 1
        assert metrics.lesson_lag._sum.get() < 30
    finally:
        learning.close()


def test_a_fleets_model_of_other_settings_is_left_out_at_start_and_the_lessons_that_fit_are_folded(
    kafka_settings, events
):
    """The shop changed its policy: the old model no longer fits; the workers start without it."""
    a, whole = build_processor(kafka_settings), build_processor(kafka_settings)
    _teach(a, events[:2000])
    _teach(whole, events[:2000])
    stale = {"policy": {"policy": "linucb", "rewards": 1}}
    _publish(
        kafka_settings,
        ModelRecord("model", "old", 5, 0, stale, {"old": 5}),
        ModelRecord("lesson", "a", 1, 0, a.lesson()),
    )
    core, learning, how = _starting(kafka_settings, "b")
    assert "fleet's model" in how and learning.refused == 1
    assert learning.clock == {"a": 1}
    assert learned(core) == learned(whole)


def test_a_lesson_committed_while_a_starting_worker_reads_to_the_end_is_folded_once_it_runs(kafka_settings, events):
    """The end a start reads to is the last stable offset when it looked; a poll can then return lessons the
    fleet committed since. Those must be folded, not read past: a lesson skipped and a later one of the same
    worker folded leaves a clock that claims the skipped one (a model written from it lacks its examples)."""
    b, whole = build_processor(kafka_settings), build_processor(kafka_settings)
    _teach(whole, events[:3000])
    lessons = []
    for seq, (start, end) in enumerate(((0, 1000), (1000, 2000), (2000, 3000)), 1):
        _teach(b, events[start:end], start)
        lessons.append(ModelRecord("lesson", "b", seq, 0, b.lesson()))
    _publish(kafka_settings, lessons[0])
    core = build_processor(kafka_settings)
    learning = SharedLearning(core, lambda: build_processor(kafka_settings), kafka_settings.kafka, "c")
    consumer = learning.reader.consumer
    end_offsets = consumer.end_offsets

    def end_then_more(tps):  # the fleet commits two more lessons just after the starting worker took the end
        ends = end_offsets(tps)
        consumer.end_offsets = end_offsets
        _publish(kafka_settings, *lessons[1:])
        return ends

    consumer.end_offsets = end_then_more
    try:
        learning.start(None, replayed_gap=False)
        deadline = time.monotonic() + 30
        while learning.clock.get("b", 0) < 3 and time.monotonic() < deadline:
            learning.fold_new()
            time.sleep(0.1)
    finally:
        learning.close()
    assert learning.clock == {"b": 3}
    assert learned(core) == learned(whole)  # every lesson folded, the ones committed during the start included
