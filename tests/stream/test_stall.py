"""A worker that stops making progress says so: the source's stall watch and the loop's stall reporter."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kafka.structs import TopicPartition

from stream.errors import SourceStalled
from stream.kafka_io import StallWatch
from stream.metrics import Health, StallReporter

TP = TopicPartition("clicks", 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lagging_partition_whose_position_never_moves_is_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    for t in range(0, 15):
        clock.now = float(t)
        watch.observe(False, {TP: (100, 500)})  # behind by 400, nothing arrives
    clock.now = 15.0
    with pytest.raises(SourceStalled, match=r"clicks\[0\] at 100 of 500"):
        watch.observe(False, {TP: (100, 500)})


@pytest.mark.parametrize(
    "ends_at",
    [
        lambda t: (100 + t, 500),  # the position moves (e.g. over transaction markers)
        lambda t: (500, 500),  # caught up: idle is not a stall
        lambda t: (None, 500),  # position not known yet (a fresh assignment)
        lambda t: (100, None),  # no fetch answered yet: the end is unknown
    ],
    ids=["moving", "caught-up", "no-position", "no-highwater"],
)
def test_progress_idleness_or_unknown_ends_are_not_stalls(ends_at):
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    for t in range(0, 100):
        clock.now = float(t)
        watch.observe(False, {TP: ends_at(t)})


def test_records_reset_the_clock_and_zero_turns_the_watch_off():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    for t in range(0, 100):
        clock.now = float(t)
        watch.observe(t % 10 == 0, {TP: (100, 500)})  # a record every 10 s at an unchanged position
    off = StallWatch(0.0, clock)
    for t in range(100, 200):
        clock.now = float(t)
        off.observe(False, {TP: (100, 500)})


def test_a_stuck_loop_logs_where_it_is_stuck_once_per_stall(caplog):
    health = Health(stall_s=0.2)
    release = threading.Event()

    def stuck_in_a_call_that_never_returns() -> None:
        health.tick("consuming")
        release.wait(5)

    worker = threading.Thread(target=stuck_in_a_call_that_never_returns)
    with caplog.at_level(logging.ERROR, logger="stream.metrics"):
        worker.start()
        reporter = StallReporter(health, worker.ident or 0, check_every_s=0.05)
        try:
            deadline = time.monotonic() + 5
            while reporter.reported == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # still stuck: no second report for the same stall
        finally:
            release.set()
            worker.join()
            reporter.close()
    assert reporter.reported == 1
    assert "stuck_in_a_call_that_never_returns" in caplog.text
    assert "worker loop stalled" in caplog.text


def test_a_turning_loop_is_never_reported():
    health = Health(stall_s=0.2)
    reporter = StallReporter(health, threading.get_ident(), check_every_s=0.05)
    try:
        for _ in range(20):
            health.tick("consuming")
            time.sleep(0.05)
    finally:
        reporter.close()
    assert reporter.reported == 0
