"""Platt scaling of snapshots: the fit, the registry applying it (and not, for older snapshots), the lab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from test_registry import NAMES, Clock, make_booster, make_metadata, random_rows

from models.calibration import A_MAX, Platt
from models.errors import SnapshotRejected
from models.snapshots.registry import Registry
from models.snapshots.training import TrainParams, evaluate, train


def test_fit_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(7)
    margin = rng.normal(scale=3.0, size=40_000)
    y = rng.random(40_000) < 1 / (1 + np.exp(-(0.4 * margin + 0.7)))
    cal = Platt.fit(margin, y)
    assert cal.a == pytest.approx(0.4, abs=0.03) and cal.b == pytest.approx(0.7, abs=0.05)
    # weights count as repeated rows
    half = Platt.fit(margin[:20_000], y[:20_000], np.full(20_000, 2.0))
    assert half.a == pytest.approx(0.4, abs=0.05)


def test_a_calibrated_model_scores_as_well_calibrated() -> None:
    rng = np.random.default_rng(1)
    margin = rng.normal(scale=2.0, size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-0.5 * margin))).astype(float)
    p_raw = 1 / (1 + np.exp(-margin))
    p_cal = Platt.fit(margin, y).apply(margin)

    def ece(p: np.ndarray) -> float:
        bins = np.minimum((p * 10).astype(int), 9)
        return float(np.abs(np.bincount(bins, y, 10) - np.bincount(bins, p, 10)).sum() / len(y))

    assert ece(p_cal) < 0.02 < 0.08 < ece(p_raw)


def test_slope_stays_in_bounds_and_the_fit_survives_one_class() -> None:
    rng = np.random.default_rng(3)
    margin = np.linspace(-0.05, 0.05, 20_000)  # a near-constant booster whose margin says much more than it shows
    cal = Platt.fit(margin, rng.random(20_000) < 1 / (1 + np.exp(-50 * margin)))
    assert cal.a == A_MAX and np.isfinite(cal.b)
    assert np.isfinite(Platt.fit(margin, np.zeros(20_000)).b)


def test_metadata_round_trip_and_bad_entries() -> None:
    cal = Platt(0.5, -0.25)
    assert Platt.from_metadata(cal.to_metadata()) == cal and Platt.from_metadata(None) is None
    for bad in ({"method": "isotonic"}, {"method": "platt", "a": "x", "b": 0.0}, {"method": "platt", "a": 1.0}):
        with pytest.raises(ValueError):
            Platt.from_metadata(bad)


def test_train_calibrates_only_with_folds_and_only_from_scratch() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    y = (X[:, 0] + 2.0 * rng.normal(size=300) > 0).astype(np.float32)  # a weak signal, easy to overfit
    w = np.ones(300, dtype=np.float32)
    plain = train(X, y, w, ["a", "b"], TrainParams(num_rounds=50, nthread=1))
    assert plain.calibration is None
    params = TrainParams(num_rounds=50, nthread=1, calibration_folds=3)
    calibrated = train(X, y, w, ["a", "b"], params)
    assert calibrated.calibration is not None and calibrated.calibration.a < 1.0  # it shrinks an overfit booster
    assert train(X, y, w, ["a", "b"], params, base=calibrated.booster, rounds=2).calibration is None
    with pytest.raises(ValueError):
        TrainParams(calibration_folds=1)
    # the held-out metrics: same AUC (the scaling keeps the ranking), a log loss from the calibrated probabilities
    hX = rng.normal(size=(2000, 2)).astype(np.float32)
    hy = (hX[:, 0] + 2.0 * rng.normal(size=2000) > 0).astype(np.float32)
    hw = np.ones(2000, dtype=np.float32)
    raw = evaluate(calibrated.booster, hX, hy, hw)
    cal = evaluate(calibrated.booster, hX, hy, hw, calibrated.calibration)
    assert cal["auc"] == raw["auc"] and cal["logloss"] < raw["logloss"] and cal["ece"] < raw["ece"]


def test_registry_applies_the_calibration_and_scores_old_snapshots_as_before(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry", clock=Clock())
    booster = make_booster()
    X = random_rows(50)
    old = registry.load(registry.write_snapshot({"intent": booster}, make_metadata()))
    plain = booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float32), missing=np.nan)
    assert np.array_equal(old.score("intent", X), plain) and old.calibrations == {"intent": None}

    cal = Platt(0.5, -0.2)
    meta = make_metadata(models={"intent": {"calibration": cal.to_metadata()}})
    new = registry.load(registry.write_snapshot({"intent": booster}, meta))
    margin = booster.predict(xgb.DMatrix(X.astype(np.float32), missing=np.nan), output_margin=True)
    assert np.allclose(new.score("intent", X), cal.apply(margin), atol=1e-6)
    assert all(new.score_one("intent", X[i]) == float(new.score("intent", X)[i]) for i in range(len(X)))

    bad = make_metadata(models={"intent": {"calibration": {"method": "platt", "a": None, "b": 0}}})
    with pytest.raises(SnapshotRejected, match="calibration"):
        registry.load(registry.write_snapshot({"intent": booster}, bad))
    assert len(NAMES) == old.models["intent"].num_features()
