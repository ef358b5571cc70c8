"""A worker that stops making progress says so: the source's stall watch and the loop's stall reporter."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from stream.errors import SourceStalled
from stream.metrics import Health, StallReporter
from stream.stall_watch import ConsumerView, StallWatch

TP = TopicPartition("clicks", 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _view(position, highwater, member="stable"):
    return ConsumerView(ends={TP: (position, highwater)}, member=member)


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
    watch = StallWatch(15.0, clock, read_ends=lambda tps: pytest.fail("no need to ask the broker"))
    _run(watch, clock, 100, view_at)


class _Broker:
    """Answers end-offset lookups, counting them."""

    def __init__(self, end=None, error=None):
        self.end, self.error, self.asked = end, error, 0

    def __call__(self, tps):
        self.asked += 1
        if self.error is not None:
            raise self.error
        return {tp: self.end for tp in tps}


@pytest.mark.parametrize(
    "position, highwater",
    [(100, None), (None, None), (100, 100)],
    ids=["no-highwater", "no-position", "stale-highwater"],
)
def test_the_broker_says_whether_a_quiet_consumer_is_caught_up_once_per_limit(position, highwater):
    # a fresh consumer whose first fetch never answered knows no end; after a broker restart a consumer was
    # seen with a stale highwater mark equal to its position, and no fetch going out any more
    clock = _Clock()
    caught_up = _Broker(end=position or 0)
    watch = StallWatch(15.0, clock, read_ends=caught_up)
    _run(watch, clock, 100, lambda t: _view(position, highwater))
    assert caught_up.asked == 100 // 15  # caught up: idle, looked at again after each limit

    behind = _Broker(end=500)
    watch = StallWatch(15.0, clock, read_ends=behind)
    with pytest.raises(SourceStalled, match=r"behind the end the broker reports \(clicks\[0\] ends at 500\)"):
        _run(watch, clock, 100, lambda t: _view(position, highwater))
    assert behind.asked == 1


def test_a_broker_that_cannot_say_where_the_partition_ends_is_a_stall():
    clock = _Clock()
    watch = StallWatch(15.0, clock, read_ends=_Broker(error=KafkaTimeoutError("no answer in 15000 ms")))
    with pytest.raises(SourceStalled, match=r"does not say where clicks\[0\] end.*KafkaTimeoutError"):
        _run(watch, clock, 100, lambda t: _view(100, None))


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
