"""The lab's snapshot strategies are Platt-scaled as the nightly retrain's snapshots are, and it pays."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
from factories import simulated_events

from models.snapshots.quality import ece, log_loss
from stream.app.settings import load_settings
from stream.lab.backtest import LAB_PARAMS
from stream.lab.rows import LabRows, collect_rows
from stream.lab.strategies import Full, days_of


@functools.cache
def stream() -> LabRows:
    return collect_rows(simulated_events("abrupt", 10, 1500, seed=2), load_settings(env={}).processing)


def forecasts(calibration_folds: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    rows = stream()
    full = Full(rows, seed=1, params=replace(LAB_PARAMS, calibration_folds=calibration_folds))
    p, y = [], []
    for day in days_of(rows):
        full.observe(day)
        forecast = full.predict(day)
        if forecast is not None:
            p.append(forecast)
            y.append(rows.y[day.decided])
        full.nightly(day)
    return np.concatenate(p), np.concatenate(y), None if full.calibration is None else full.calibration.a


def test_calibrated_snapshots_forecast_better_than_uncalibrated_ones():
    """The first nights' boosters, trained on a few hundred rows of a weak signal, forecast far too extreme
    probabilities; the out-of-fold Platt scaling shrinks them (slope below 1) and the error falls."""
    assert LAB_PARAMS.calibration_folds >= 2
    p_raw, y, _ = forecasts(0)
    p_cal, y_cal, slope = forecasts(LAB_PARAMS.calibration_folds)
    assert np.array_equal(y, y_cal) and slope is not None and 0 < slope < 1
    assert ece(p_cal, y) < ece(p_raw, y)
    assert log_loss(p_cal, y) < log_loss(p_raw, y)
