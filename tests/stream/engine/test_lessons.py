"""A core's lesson bundles what all its learners learned; cores that swap lessons learn from every reward."""

from __future__ import annotations

import orjson
import pytest
from factories import learned, settings, simulated_events

from stream.app.build import build_processor
from stream.core.lessons import LessonMismatch
from stream.core.records import SourceRecord
from stream.engine.processor import Processor
from stream.kafka.clients import partition_for_key


def _wire(lesson):
    return orjson.loads(orjson.dumps(lesson))


def _run(cores: list[Processor], events: list[dict], share_every: int | None) -> None:
    offsets = [0] * len(cores)
    for i, e in enumerate(events):
        w = partition_for_key(e["user_id"].encode(), 4) % len(cores)
        cores[w].process(SourceRecord(orjson.dumps(e), "clicks", 0, offsets[w]))
        offsets[w] += 1
        if share_every and (i + 1) % share_every == 0:
            _share(cores)
    if share_every:
        _share(cores)


def _share(cores: list[Processor]) -> None:
    lessons = [core.lesson() for core in cores]
    for i, lesson in enumerate(lessons):
        for j, core in enumerate(cores):
            if lesson is not None and i != j:
                core.fold(_wire(lesson))


def test_cores_that_swap_lessons_have_each_learned_from_every_reward():
    events = simulated_events("stationary", days=2, users=1500, seed=4)
    one = build_processor(settings())
    _run([one], events, share_every=None)
    fleet = [build_processor(settings()) for _ in range(2)]
    _run(fleet, events, share_every=300)
    assert one.policy.version.endswith(tuple("123456789"))  # it learned something
    assert learned(fleet[0]) == learned(fleet[1]) == learned(one)
    apart = [build_processor(settings()) for _ in range(2)]
    _run(apart, events, share_every=None)
    assert learned(apart[0]) != learned(one)


def test_a_core_that_learned_nothing_has_no_lesson():
    core = build_processor(settings())
    assert core.lesson() is None


def test_a_lesson_for_learners_this_core_does_not_run_is_refused_before_anything_is_folded():
    events = simulated_events("stationary", days=1, users=800, seed=5)
    teacher = build_processor(settings())
    _run([teacher], events, share_every=None)
    lesson = _wire(teacher.lesson())
    assert lesson["policy"] and lesson["learners"]
    bare = build_processor(settings(models={"learners": False}))
    before = orjson.dumps(bare.snapshot())
    with pytest.raises(LessonMismatch):
        bare.fold(lesson)
    assert orjson.dumps(bare.snapshot()) == before
