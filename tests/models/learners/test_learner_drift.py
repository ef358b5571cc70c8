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


def biases(rng: random.Random, phases: list[tuple[int, float, float]]) -> list[tuple[float, float]]:
    """(error, label − p) for a model predicting ``p`` of events that happen at ``rate``, phase by phase."""
    out = []
    for n, p, rate in phases:
        for _ in range(n):
            y = rng.random() < rate
            out.append((-math.log(p if y else 1.0 - p) / math.log(1e6), float(y) - p))
    return out


def feed_bias(monitor: DriftMonitor, stream: list[tuple[float, float]]) -> list[int]:
    return [i for i, (e, b) in enumerate(stream) if monitor.update(e, ts_ms=i, bias=b)]


@pytest.mark.parametrize("seed", range(5))
def test_a_model_predicting_too_high_raises_a_bias_alarm_though_its_error_falls(seed):
    # calibrated at 10 %, then the positives halve: the log loss falls, the bias does not stay at zero
    stream = biases(random.Random(seed), [(10_000, 0.1, 0.1), (6_000, 0.1, 0.05)])
    assert feed(DriftMonitor(), [e for e, _ in stream]) == []  # the error alone sees an easier stream
    monitor = DriftMonitor()
    alarms = feed_bias(monitor, stream)
    assert alarms and all(10_000 <= t < 13_000 for t in alarms)
    assert monitor.last_alarm_reason == "predicting too high"
    assert monitor.bias == pytest.approx(-0.05, abs=0.02)


@pytest.mark.parametrize("seed", range(5))
def test_a_model_predicting_too_low_is_an_alarm_too(seed):
    stream = [(0.5, b) for _, b in biases(random.Random(seed), [(10_000, 0.1, 0.1), (6_000, 0.1, 0.2)])]
    monitor = DriftMonitor()  # a steady error, so that only the bias can fire (the log loss rises here too)
    alarms = feed_bias(monitor, stream)
    assert alarms and all(10_000 <= t < 12_000 for t in alarms)
    assert monitor.last_alarm_reason == "predicting too low"
    assert monitor.bias == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("seed", range(5))
def test_a_calibrated_model_raises_no_bias_alarm(seed):
    monitor = DriftMonitor()
    assert feed_bias(monitor, biases(random.Random(seed), [(30_000, 0.1, 0.1)])) == []
    assert monitor.bias == pytest.approx(0.0, abs=0.01)


def test_a_rise_of_the_error_says_so():
    monitor = DriftMonitor()
    assert feed(monitor, bernoulli(random.Random(0), [(5_000, 0.2), (3_000, 0.4)]))
    assert monitor.last_alarm_reason == "error rose"


def test_a_monitor_from_before_the_bias_detector_restores_with_it_empty():
    monitor = DriftMonitor()
    stream = biases(random.Random(3), [(2_000, 0.1, 0.1)])
    feed_bias(monitor, stream)
    old = {k: v for k, v in monitor.snapshot().items() if not k.startswith("bias_") and k != "last_alarm_reason"}
    twin = DriftMonitor()
    twin.restore(orjson.loads(orjson.dumps(old)))
    assert twin.n == monitor.n and twin.error == monitor.error and twin.bias == 0.0
    assert twin.last_alarm_reason is None
    feed_bias(twin, stream)  # and it watches from there
    assert twin.bias == pytest.approx(monitor.bias, abs=0.02)
