"""The shared checks every update strategy of the strategy lab must pass. A strategy registered in
``stream.lab.strategies.STRATEGIES`` joins automatically."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from factories import simulated_events

from stream.app.settings import load_settings
from stream.lab.rows import LabRows, collect_rows
from stream.lab.strategies import STRATEGIES, days_of, make_strategy


@functools.cache
def rows() -> LabRows:
    return collect_rows(simulated_events("stationary", 5, 4000, seed=4), load_settings(env={}).processing)


def run(name: str) -> list[np.ndarray | None]:
    strategy = make_strategy(name, rows(), seed=2)
    out = []
    for day in days_of(rows()):
        strategy.observe(day)
        out.append(strategy.predict(day))
        strategy.nightly(day)
    assert strategy.leaks == 0, f"{name} forecast {strategy.leaks} rows it had already learned"
    return out


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_forecasts_are_probabilities_for_each_decision_of_the_day(name):
    days = days_of(rows())
    forecasts = run(name)
    assert forecasts[-1] is not None, "a strategy has a model by the last day"
    for day, p in zip(days, forecasts, strict=True):
        if p is None:
            continue
        assert p.shape == (len(day.decided),)
        assert np.all((p >= 0.0) & (p <= 1.0))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_forecasts(name):
    first, second = run(name), run(name)
    for a, b in zip(first, second, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"base_rate"}))
def test_forecasts_depend_on_the_session(name):
    """A strategy that learned something tells sessions apart (not one constant for all); the base rate, which
    knows nothing by design, is the one exception."""
    last = run(name)[-1]
    assert last is not None and np.ptp(last) > 0.0


def test_the_base_rate_is_the_share_that_bought_by_the_last_midnight():
    r = rows()
    days = days_of(r)
    forecasts = run("base_rate")
    assert forecasts[0] is None  # nothing labelled before the first midnight
    for before, day, p in zip(days, days[1:], forecasts[1:], strict=False):
        labelled = r.closed_ms < before.end_ms
        assert p is not None and np.allclose(p, r.y[labelled].mean()), day.day


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_night_reports_what_it_trained(name):
    strategy = make_strategy(name, rows(), seed=2)
    trained = []
    for day in days_of(rows()):
        strategy.observe(day)
        strategy.predict(day)
        t = strategy.nightly(day)
        if t is not None:
            trained.append(t)
            assert t.rows >= 0 and t.cpu_s >= 0.0
    assert sum(t.rows for t in trained) > 0
