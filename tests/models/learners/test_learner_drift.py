"""The drift monitor: ADWIN on an error stream fires after an abrupt rise, stays quiet on a stationary stream."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from models.learners.base import DriftMonitor


def bernoulli(rng: random.Random, rates: list[tuple[int, float]]) -> list[float]:
    return [float(rng.random() < rate) for n, rate in rates for _ in range(n)]


def feed(monitor: DriftMonitor, errors: list[float], t0: int = 0) -> list[int]:
    """Feed errors stamped t0, t0 + 1, ...; the times of the alarms."""
    return [t0 + i for i, e in enumerate(errors) if monitor.update(e, ts_ms=t0 + i)]


@pytest.mark.parametrize("seed", range(5))
def test_quiet_on_a_stationary_stream(seed):
    monitor = DriftMonitor()
    assert feed(monitor, bernoulli(random.Random(seed), [(20_000, 0.3)])) == []
    assert monitor.alarms == 0 and monitor.last_alarm_ts_ms is None and monitor.n == 20_000


@pytest.mark.parametrize("seed", range(5))
def test_fires_soon_after_an_abrupt_rise(seed):
    monitor = DriftMonitor()
    alarms = feed(monitor, bernoulli(random.Random(seed), [(5_000, 0.2), (3_000, 0.4)]))
    assert alarms and all(5_000 <= t < 5_400 for t in alarms)
    assert monitor.alarms == len(alarms) and monitor.last_alarm_ts_ms == alarms[-1]
    assert monitor.error == pytest.approx(0.4, abs=0.05)


def test_a_falling_error_is_not_an_alarm_unless_asked():
    errors = bernoulli(random.Random(0), [(5_000, 0.5), (3_000, 0.1)])
    assert feed(DriftMonitor(), errors) == []
    assert feed(DriftMonitor(increase_only=False), errors) != []


def test_delta_sets_the_sensitivity():
    errors = bernoulli(random.Random(1), [(5_000, 0.2), (3_000, 0.26)])
    strict, loose = DriftMonitor(delta=1e-6), DriftMonitor(delta=0.1)
    assert len(feed(loose, errors)) >= len(feed(strict, errors))
    assert loose.alarms >= 1


def test_non_finite_errors_are_ignored():
    monitor = DriftMonitor()
    assert monitor.update(math.nan, ts_ms=1) is False and monitor.update(math.inf) is False
    assert monitor.n == 0


def test_snapshot_then_restore_is_like_never_stopping():
    errors = bernoulli(random.Random(2), [(3_000, 0.2), (3_000, 0.5)])
    monitor = DriftMonitor()
    feed(monitor, errors[:5_000])  # the alarm is already behind, the new window half full
    twin = DriftMonitor()
    twin.restore(orjson.loads(orjson.dumps(monitor.snapshot())))
    assert twin.snapshot() == monitor.snapshot()
    assert feed(twin, errors[5_000:], 5_000) == feed(monitor, errors[5_000:], 5_000)
    assert twin.snapshot() == monitor.snapshot()


def test_restore_refuses_other_hyperparameters():
    with pytest.raises(ValueError):
        DriftMonitor(delta=0.01).restore(DriftMonitor(delta=0.002).snapshot())
