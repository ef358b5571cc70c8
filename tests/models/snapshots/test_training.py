"""Snapshot training: row collection, scratch and warm training, determinism, metrics, degenerate slices, gate."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest
import xgboost as xgb

from models.snapshots.training import Rows, TrainingSet, TrainParams, evaluate, gate, train

FEATURES = [f"f{i}" for i in range(8)]
FAST = TrainParams(num_rounds=40, warm_rounds=30, nthread=2, seed=5)


def logistic_data(n: int, seed: int, coef: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` rows of a logistic concept (labels drawn from sigmoid(X @ coef)), weights in [0.5, 2)."""
    rng = np.random.default_rng(seed)
    coef = np.array([2.0, -1.5, 1.0, 0, 0, 0.5, 0, 0]) if coef is None else coef
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan  # some missing values
    logits = np.nan_to_num(X) @ coef
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    w = rng.uniform(0.5, 2.0, n).astype(np.float32)
    return X, y, w


def brute_force_auc(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted pairwise AUC: P(score of a positive > score of a negative), ties counting half."""
    pos, neg = y >= 0.5, y < 0.5
    diff = p[pos][:, None] - p[neg][None, :]
    pair_w = w[pos][:, None] * w[neg][None, :]
    wins = (diff > 0) + 0.5 * (diff == 0)
    return float((pair_w * wins).sum() / pair_w.sum())


@pytest.fixture(scope="module")
def trained() -> tuple[xgb.Booster, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    X, y, w = logistic_data(4000, seed=1)
    return train(X, y, w, FEATURES, FAST).booster, logistic_data(2000, seed=2)


# --- TrainingSet ---------------------------------------------------------------------------------------------


def test_training_set_growth_and_arrays_across_chunk_boundaries() -> None:
    ts = TrainingSet(["a", "b", "c"], chunk_rows=3, max_chunk_rows=16)
    rng = np.random.default_rng(0)
    expected_X, expected_y, expected_w, expected_day = [], [], [], []
    for i in range(101):
        x, y, wt, day = rng.normal(size=3), float(i % 3 == 0), 1.0 + i, date(2026, 1, 1) + timedelta(days=i % 7)
        ts.append(x if i % 2 else list(x), y, wt, day)
        expected_X.append(x)
        expected_y.append(y)
        expected_w.append(wt)
        expected_day.append(day.toordinal())
        n = len(ts)
        assert n == i + 1
        assert n <= ts.capacity <= max(2 * n, n + ts.max_chunk_rows, ts.chunk_rows)
        if i in (2, 3, 5, 6, 47, 48, 100):  # on and just past chunk ends (sizes 3, 3, 6, 12, 16, 16, ...)
            rows = ts.arrays()
            assert rows.X.dtype == rows.y.dtype == rows.w.dtype == np.float32
            assert rows.day.dtype == np.int32
            assert rows.X.shape == (n, 3)
            np.testing.assert_array_equal(rows.X, np.array(expected_X, dtype=np.float32))
            np.testing.assert_array_equal(rows.y, np.array(expected_y, dtype=np.float32))
            np.testing.assert_array_equal(rows.w, np.array(expected_w, dtype=np.float32))
            np.testing.assert_array_equal(rows.day, np.array(expected_day, dtype=np.int32))
    assert ts.positives == 34
    assert ts.days == (date(2026, 1, 1), date(2026, 1, 7))


def test_training_set_empty() -> None:
    ts = TrainingSet(["a"])
    rows = ts.arrays()
    assert len(ts) == 0 and ts.days is None and ts.positives == 0 and ts.capacity == 0
    assert rows.X.shape == (0, 1) and rows.n == 0 and rows.days is None
    train_rows, holdout = ts.split_recent(3)
    assert train_rows.n == holdout.n == 0


def test_arrays_are_copies() -> None:
    ts = TrainingSet(["a"])
    ts.append([1.0], 1.0, 1.0, date(2026, 1, 1))
    ts.arrays().X[0, 0] = 99.0
    assert ts.arrays().X[0, 0] == 1.0


@pytest.mark.parametrize(
    ("x", "y", "weight", "day", "error"),
    [
        ([1.0], 1.0, 1.0, date(2026, 1, 1), ValueError),  # too few features
        ([1.0, math.inf], 1.0, 1.0, date(2026, 1, 1), ValueError),
        ([1.0, 2.0], 1.5, 1.0, date(2026, 1, 1), ValueError),
        ([1.0, 2.0], math.nan, 1.0, date(2026, 1, 1), ValueError),
        ([1.0, 2.0], 1.0, 0.0, date(2026, 1, 1), ValueError),
        ([1.0, 2.0], 1.0, math.nan, date(2026, 1, 1), ValueError),
        ([1.0, 2.0], 1.0, 1.0, "2026-01-01", TypeError),
    ],
)
def test_append_rejects_unusable_rows(x: list[float], y: float, weight: float, day: date, error: type) -> None:
    ts = TrainingSet(["a", "b"])
    with pytest.raises(error):
        ts.append(x, y, weight, day)
    assert len(ts) == 0


def test_split_recent_picks_exactly_the_latest_calendar_days() -> None:
    ts = TrainingSet(["a"], chunk_rows=2)
    present = [1, 2, 3, 5, 8, 9, 10, 12]  # days of January, with gaps
    for i in range(400):
        ts.append([float(i)], float(i % 2), 1.0, date(2026, 1, present[i % len(present)]))
    for holdout_days, expected in [(1, {12}), (3, {10, 12}), (5, {8, 9, 10, 12}), (100, set(present))]:
        older, recent = ts.split_recent(holdout_days)
        assert {date.fromordinal(int(d)).day for d in recent.day} == expected
        assert {date.fromordinal(int(d)).day for d in older.day} == set(present) - expected
        assert older.n + recent.n == len(ts)
        # rows keep their features, labels and weights together
        np.testing.assert_array_equal(recent.y, recent.X[:, 0] % 2)
    with pytest.raises(ValueError):
        ts.split_recent(0)


# --- training ------------------------------------------------------------------------------------------------


def test_training_clearly_beats_a_constant_predictor(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, (X, y, w) = trained
    report = evaluate(booster, X, y, w)
    assert report["auc"] > 0.8  # a constant predictor scores 0.5
    assert report["logloss"] < 0.5
    assert report["ece"] < 0.05
    assert report["note"] is None
    assert report["n"] == 2000 and report["positives"] == int(y.sum())


def test_scratch_result_fields() -> None:
    X, y, w = logistic_data(1000, seed=3)
    result = train(X, y, w, FEATURES, FAST)
    assert not result.warm
    assert result.rows == 1000 and result.rounds == FAST.num_rounds and result.best_iteration == FAST.num_rounds - 1
    assert result.validation_rows == 0  # 100 validation rows < min_validation_rows: no early stopping
    assert result.cpu_s > 0 and result.wall_s > 0 and result.rows_per_s > 0
    assert result.booster.feature_names == FEATURES


def test_early_stopping_keeps_trees_up_to_the_best() -> None:
    X, y, w = logistic_data(3000, seed=4)
    params = TrainParams(num_rounds=400, eta=0.5, nthread=2, early_stopping_rounds=5, min_validation_rows=100)
    result = train(X, y, w, FEATURES, params)
    assert result.validation_rows == 300
    assert result.rounds < 400
    assert result.best_iteration == result.rounds - 1
    assert result.booster.num_boosted_rounds() == result.rounds


def test_training_is_deterministic_for_seed_and_nthread() -> None:
    X, y, w = logistic_data(3000, seed=6)
    params = TrainParams(num_rounds=60, nthread=2, seed=9, early_stopping_rounds=10, min_validation_rows=100)
    first, second = (train(X, y, w, FEATURES, params) for _ in range(2))
    assert first.rounds == second.rounds
    data = xgb.DMatrix(X, feature_names=FEATURES, missing=np.nan)
    np.testing.assert_array_equal(first.booster.predict(data), second.booster.predict(data))
    other_seed = train(X, y, w, FEATURES, TrainParams(num_rounds=60, nthread=2, seed=10))
    assert not np.array_equal(first.booster.predict(data), other_seed.booster.predict(data))


def test_warm_start_adds_trees_and_learns_the_new_concept() -> None:
    X_old, y_old, w_old = logistic_data(4000, seed=11)
    base = train(X_old, y_old, w_old, FEATURES, FAST).booster
    new_coef = np.array([-1.0, 0, 0, 2.0, -2.0, 0, 0, 1.0])  # the concept drifted
    X_new, y_new, w_new = logistic_data(3000, seed=12, coef=new_coef)
    X_test, y_test, w_test = logistic_data(2000, seed=13, coef=new_coef)

    warm = train(X_new, y_new, w_new, FEATURES, FAST, base=base)

    assert warm.warm
    assert warm.rounds == FAST.num_rounds + FAST.warm_rounds
    assert base.num_boosted_rounds() == FAST.num_rounds  # the base is untouched
    before = evaluate(base, X_test, y_test, w_test)["auc"]
    after = evaluate(warm.booster, X_test, y_test, w_test)["auc"]
    assert after > before + 0.1


def test_warm_start_rejects_other_features(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, (X, y, w) = trained
    with pytest.raises(ValueError, match="features"):
        train(X, y, w, [f"g{i}" for i in range(8)], FAST, base=booster)


def test_train_rejects_bad_shapes() -> None:
    X, y, w = logistic_data(10, seed=0)
    with pytest.raises(ValueError):
        train(X, y[:5], w, FEATURES, FAST)
    with pytest.raises(ValueError):
        train(X, y, w, FEATURES[:3], FAST)
    with pytest.raises(ValueError):
        train(X[:0], y[:0], w[:0], FEATURES, FAST)


def test_train_accepts_training_set_rows() -> None:
    ts = TrainingSet(FEATURES)
    X, y, w = logistic_data(600, seed=14)
    for i in range(600):
        ts.append(X[i], float(y[i]), float(w[i]), date(2026, 2, 1) + timedelta(days=i % 10))
    rows, holdout = ts.split_recent(2)
    assert isinstance(rows, Rows) and holdout.n == 120
    result = train(rows.X, rows.y, rows.w, ts.feature_names, FAST)
    assert evaluate(result.booster, holdout.X, holdout.y, holdout.w)["auc"] > 0.7


# --- evaluation ----------------------------------------------------------------------------------------------


def test_evaluate_matches_brute_force_metrics(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, (X, y, w) = trained
    X, y, w = X[:300], y[:300], w[:300]
    report = evaluate(booster, X, y, w)
    p = booster.predict(xgb.DMatrix(X, feature_names=FEATURES, missing=np.nan)).astype(np.float64)
    y64, w64 = y.astype(np.float64), w.astype(np.float64)
    assert report["auc"] == pytest.approx(brute_force_auc(p, y64, w64), abs=1e-6)
    logloss = -(w64 * (y64 * np.log(p) + (1 - y64) * np.log(1 - p))).sum() / w64.sum()
    assert report["logloss"] == pytest.approx(logloss, abs=1e-6)
    ece = 0.0
    for b in range(10):
        in_bin = (p >= b / 10) & ((p < (b + 1) / 10) if b < 9 else (p <= 1))
        if in_bin.any():
            bin_w = w64[in_bin]
            gap = np.average(y64[in_bin], weights=bin_w) - np.average(p[in_bin], weights=bin_w)
            ece += bin_w.sum() / w64.sum() * abs(gap)
    assert report["ece"] == pytest.approx(ece, abs=1e-9)
    assert report["weight"] == pytest.approx(w64.sum())


def test_evaluate_auc_with_many_ties_matches_brute_force() -> None:
    X, y, w = logistic_data(400, seed=15)
    stump = train(X, y, w, FEATURES, TrainParams(num_rounds=2, max_depth=1, nthread=2)).booster
    p = stump.predict(xgb.DMatrix(X, feature_names=FEATURES, missing=np.nan)).astype(np.float64)
    assert len(np.unique(p)) <= 4  # two stumps: heavy ties
    expected = brute_force_auc(p, y.astype(np.float64), w.astype(np.float64))
    assert evaluate(stump, X, y, w)["auc"] == pytest.approx(expected, abs=1e-6)


def test_evaluate_does_not_change_the_booster(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, (X, y, w) = trained
    config = booster.save_config()
    evaluate(booster, X[:100], y[:100], w[:100])
    assert booster.save_config() == config


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_single_class_slice_has_no_auc(trained: tuple[xgb.Booster, tuple], label: float) -> None:
    booster, (X, _, w) = trained
    report = evaluate(booster, X[:50], np.full(50, label), w[:50])
    assert report["auc"] is None
    assert "single class" in report["note"]
    assert math.isfinite(report["logloss"]) and math.isfinite(report["ece"])
    assert report["positives"] == (50 if label else 0)


def test_empty_slice(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, _ = trained
    report = evaluate(booster, np.empty((0, 8), dtype=np.float32), [], [])
    assert report == {"n": 0, "positives": 0, "weight": 0.0, "auc": None, "logloss": None, "ece": None} | {
        "note": "empty slice"
    }
    assert gate(report, {"auc": 0.8})["promote"] is False


# --- gate ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "metric", "tolerance", "promote"),
    [
        (0.81, 0.80, "auc", 0.005, True),  # better
        (0.80, 0.80, "auc", 0.005, True),  # equal
        (0.795, 0.80, "auc", 0.005, True),  # exactly on the tolerance edge
        (0.7949, 0.80, "auc", 0.005, False),  # just past it
        (0.799, 0.80, "auc", 0.0, False),  # no tolerance: any loss blocks
        (0.80, 0.80, "auc", 0.0, True),
        (0.39, 0.40, "logloss", 0.005, True),  # lower logloss is better
        (0.405, 0.40, "logloss", 0.005, True),  # edge
        (0.4051, 0.40, "logloss", 0.005, False),
        (0.30, 0.40, "logloss", 0.0, True),
        (0.50, 0.40, "logloss", 0.05, False),
        (0.02, 0.03, "ece", 0.0, True),
        (0.04, 0.03, "ece", 0.005, False),
    ],
)
def test_gate_truth_table(challenger: float, champion: float, metric: str, tolerance: float, promote: bool) -> None:
    verdict = gate({metric: challenger}, {metric: champion}, metric=metric, tolerance=tolerance)
    assert verdict["promote"] is promote
    assert verdict["challenger"] == challenger and verdict["champion"] == champion
    assert verdict["metric"] == metric and verdict["tolerance"] == tolerance
    assert verdict["reason"].startswith(metric)


def test_gate_special_cases() -> None:
    assert gate({"auc": 0.6}, None) == {
        "promote": True,
        "reason": "no current snapshot",
        "metric": "auc",
        "tolerance": 0.005,
        "challenger": 0.6,
        "champion": None,
    }
    no_auc = gate({"auc": None, "note": "single class in slice (0 positives of 9)"}, {"auc": 0.8})
    assert no_auc["promote"] is False and "single class" in no_auc["reason"]
    assert gate({"auc": None}, None)["promote"] is False  # even with no champion
    assert gate({"auc": math.nan}, {"auc": 0.8})["promote"] is False
    assert gate({"auc": 0.7}, {"auc": None})["promote"] is True
    assert gate({}, {"auc": 0.8})["reason"] == "challenger has no auc"
    with pytest.raises(ValueError):
        gate({"auc": 0.7}, None, metric="accuracy")
    with pytest.raises(ValueError):
        gate({"auc": 0.7}, None, tolerance=-0.1)


def test_gate_on_real_evaluations(trained: tuple[xgb.Booster, tuple]) -> None:
    booster, (X, y, w) = trained
    weak = train(X[:200], y[:200], w[:200], FEATURES, TrainParams(num_rounds=2, max_depth=1, nthread=2)).booster
    strong, champion = evaluate(booster, X, y, w), evaluate(weak, X, y, w)
    assert gate(strong, champion)["promote"] is True
    assert gate(champion, strong)["promote"] is False
    assert gate(strong, champion, metric="logloss")["promote"] is True
