"""A worker that stops making progress says so: the source's stall watch and the loop's stall reporter."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from stream.app.monitoring import Health, StallReporter
from stream.kafka.errors import SourceStalled
from stream.kafka.stall_watch import ConsumerView, StallWatch

TP = TopicPartition("clicks", 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _view(position, highwater, member="stable", next_offset=None):
    return ConsumerView(
        ends={TP: (position, highwater)}, member=member, next={} if next_offset is None else {TP: next_offset}
    )


def _run(watch, clock, seconds, view_at, records_at=lambda t: False):
    for t in range(seconds):
        clock.now = float(t)
        watch.observe(records_at(t), view_at(t))


def test_a_lagging_partition_whose_position_never_moves_is_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    _run(watch, clock, 15, lambda t: _view(100, 500))  # behind by 400, nothing arrives
    clock.now = 15.0
    with pytest.raises(SourceStalled, match=r"behind the highwater mark .*clicks\[0\] at 100 of 500"):
        watch.observe(False, _view(100, 500))


def test_time_spent_restoring_partitions_does_not_count_towards_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    watch.observe(False, _view(100, 500))
    clock.now = 200.0  # restoring the state of newly assigned partitions, not polling
    watch.reset()
    clock.now = 214.0
    watch.observe(False, _view(100, 500))  # 14 s since the restore ended: not yet a stall
    clock.now = 215.0
    with pytest.raises(SourceStalled):
        watch.observe(False, _view(100, 500))


@pytest.mark.parametrize(
    "view_at",
    [
        lambda t: _view(100 + t, 500),  # the position moves (e.g. over transaction markers)
        lambda t: ConsumerView(ends={}, member="stable"),  # a stable member with nothing assigned is idle
    ],
    ids=["moving", "stable-nothing-assigned"],
)
def test_progress_or_idleness_is_not_a_stall(view_at):
    clock = _Clock()
    watch = StallWatch(15.0, clock, probe=lambda starts: pytest.fail("no need to read afresh"))
    _run(watch, clock, 100, view_at)


class _Reader:
    """A fresh reader: finds a record at ``record_at`` or later, if any; counts its reads."""

    def __init__(self, record_at=None, error=None):
        self.record_at, self.error, self.starts = record_at, error, []

    def __call__(self, starts):
        self.starts.append(dict(starts))
        if self.error is not None:
            raise self.error
        return {tp: max(s, self.record_at) for tp, s in starts.items() if self.record_at is not None}


@pytest.mark.parametrize(
    "position, highwater, next_offset",
    [
        (100, None, 100),  # a fresh consumer whose first fetch never answered knows no end
        (None, None, 100),  # nor its position
        (100, 100, 100),  # its view says caught up
        (500, 500, 100),  # its position passed records it never handed over (seen after a broker restart)
    ],
    ids=["no-highwater", "no-position", "caught-up-view", "position-past-the-worker"],
)
def test_a_quiet_consumer_is_read_afresh_from_the_workers_next_offset_once_per_limit(position, highwater, next_offset):
    clock = _Clock()
    nothing = _Reader(record_at=None)  # caught up, or only transaction markers / aborted records
    watch = StallWatch(15.0, clock, probe=nothing)
    _run(watch, clock, 100, lambda t: _view(position, highwater, next_offset=next_offset))
    assert nothing.starts == [{TP: next_offset}] * (100 // 15)  # idle: read again after each limit

    records = _Reader(record_at=next_offset + 3)
    watch = StallWatch(15.0, clock, probe=records)
    with pytest.raises(SourceStalled, match=r"a fresh reader finds records the consumer does not return \(clicks"):
        _run(watch, clock, 100, lambda t: _view(position, highwater, next_offset=next_offset))
    assert len(records.starts) == 1


def test_without_the_workers_next_offset_the_read_starts_at_the_position_and_needs_one():
    clock = _Clock()
    reader = _Reader(record_at=None)
    watch = StallWatch(15.0, clock, probe=reader)
    _run(watch, clock, 20, lambda t: _view(100, None))
    assert reader.starts == [{TP: 100}]
    with pytest.raises(SourceStalled, match=r"clicks\[0\] have no position"):
        _run(StallWatch(15.0, clock, probe=reader), clock, 20, lambda t: _view(None, None))


def test_a_fresh_reader_that_fails_is_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock, probe=_Reader(error=KafkaTimeoutError("not read to their end in 15 s")))
    with pytest.raises(SourceStalled, match=r"a fresh reader cannot read clicks\[0\].*KafkaTimeoutError"):
        _run(watch, clock, 100, lambda t: _view(100, None, next_offset=100))


def test_a_join_that_never_finishes_is_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    with pytest.raises(SourceStalled, match=r"the group join does not finish .*assigned: nothing; member rebalancing"):
        _run(watch, clock, 100, lambda t: ConsumerView(ends={}, member="rebalancing"))


def test_records_reset_the_clock_and_zero_turns_the_watch_off():
    clock = _Clock()
    watch = StallWatch(15.0, clock)
    # a record every 10 s at an unchanged position
    _run(watch, clock, 100, lambda t: _view(100, 500), records_at=lambda t: t % 10 == 0)
    off = StallWatch(0.0, clock)
    _run(off, clock, 100, lambda t: _view(100, 500))


def test_a_stuck_loop_logs_where_it_is_stuck_once_per_stall(caplog):
    health = Health(stall_s=0.2)
    release = threading.Event()

    def stuck_in_a_call_that_never_returns() -> None:
        health.tick("consuming")
        release.wait(5)

    worker = threading.Thread(target=stuck_in_a_call_that_never_returns)
    with caplog.at_level(logging.ERROR, logger="stream.app.monitoring"):
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
