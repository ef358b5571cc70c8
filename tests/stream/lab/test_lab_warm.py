"""The lab's ``warm`` on a tiny-traffic stream: about six labelled sessions a day for four months."""

from __future__ import annotations

import functools

import numpy as np
from factories import simulated_events

from stream.app.settings import load_settings
from stream.lab.backtest import LAB_PARAMS
from stream.lab.rows import LabRows, collect_rows
from stream.lab.strategies import Warm, days_of


@functools.cache
def tiny() -> LabRows:
    return collect_rows(simulated_events("stationary", 128, 170, seed=3), load_settings(env={}).processing)


def test_warm_on_a_handful_of_sessions_a_day_stays_bounded_and_never_constant():
    """Adding 50 trees a night grew this booster to 5,600 trees that forecast one constant on every day. Now the
    nights' rows wait until there are ``warm_min_rows`` of them, and once the model has learned from that many it
    tells sessions apart every day."""
    rows = tiny()
    days = days_of(rows)
    assert len(days) > 100 and rows.n / len(days) < 8
    warm = Warm(rows, seed=1, params=LAB_PARAMS)
    trees, fine_tunes = [], 0
    for day in days:
        warm.observe(day)
        p = warm.predict(day)
        if warm.booster is not None and warm.rows_learned >= LAB_PARAMS.warm_min_rows and len(day.decided) > 1:
            assert p is not None and np.ptp(p) > 0.0, f"{day.day}: one constant for every session"
        trained = warm.nightly(day)
        if trained is not None and trained.trees is not None:
            trees.append(trained.trees)
            fine_tunes += trained.note is not None and "trees (one per" in trained.note
    assert max(trees) <= LAB_PARAMS.max_trees
    assert fine_tunes >= 2 and warm.leaks == 0
