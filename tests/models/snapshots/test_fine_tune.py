"""The warm fine-tune: trees earned by the rows, bounded by max_trees, leaves refreshed at the cap, and waiting on
a handful of rows rather than learning a constant from them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import xgboost as xgb

from models.snapshots.fine_tune import fine_tune, plan_fine_tune, worth_continuing
from models.snapshots.training import TrainParams, evaluate, train

FEATURES = [f"f{i}" for i in range(4)]
COEF = np.array([2.0, -1.5, 1.0, 0.0])
PARAMS = TrainParams(max_depth=4, eta=0.1, num_rounds=40, min_child_weight=5.0, nthread=1, seed=3, max_trees=48)


def rows(n: int, seed: int, intercept: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ COEF + intercept)))).astype(np.float32)
    return X, y, np.ones(n, dtype=np.float32)


def predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X, feature_names=FEATURES))


def trees(booster: xgb.Booster) -> list[dict]:
    return json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]


def test_tiny_nights_keep_the_booster_bounded_and_never_constant() -> None:
    """150 nights of six labelled rows each (a shop with a handful of sessions a day): the rows wait until there
    are warm_min_rows of them, each fine-tune adds a few trees, the cap turns the next ones into leaf refreshes,
    and the model keeps ranking held-out rows well every night."""
    base = train(*rows(2000, seed=1), FEATURES, PARAMS).booster
    X_test, y_test, w_test = rows(3000, seed=2)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    actions = []
    for night in range(150):
        pending.append(rows(6, seed=100 + night))
        X, y, w = (np.concatenate(part) for part in zip(*pending, strict=True))
        result = fine_tune(X, y, w, FEATURES, PARAMS, base)
        actions.append(result.action)
        if result.action != "wait":  # the caller keeps the rows until a fine-tune learns them
            base, pending = result.booster, []
        assert base.num_boosted_rounds() <= PARAMS.max_trees
        p = predict(base, X_test)
        assert np.ptp(p) > 0.1, f"night {night}: the model predicts (almost) one constant"
        assert evaluate(base, X_test, y_test, w_test)["auc"] > 0.8, f"night {night}"
    assert actions.count("wait") > 140 and "add" in actions and "refresh" in actions
    assert actions.index("add") < actions.index("refresh")


def test_a_refresh_on_a_handful_of_rows_would_predict_one_constant_so_it_waits() -> None:
    base = train(*rows(2000, seed=1), FEATURES, PARAMS).booster
    X, y, w = rows(7, seed=5)
    refresh = {"process_type": "update", "updater": "refresh", "refresh_leaf": True, "verbosity": 0}
    raw = xgb.train(PARAMS.to_xgb() | refresh, xgb.DMatrix(X, label=y, feature_names=FEATURES), 40, xgb_model=base)
    assert np.ptp(predict(raw, rows(500, seed=6)[0])) == 0.0  # seven rows empty every leaf (min_child_weight)

    assert fine_tune(X, y, w, FEATURES, PARAMS, base).action == "wait"  # fewer than warm_min_rows
    at_cap = replace(PARAMS, max_trees=base.num_boosted_rounds(), warm_min_rows=1)
    kept = fine_tune(X, y, w, FEATURES, at_cap, base)  # allowed to refresh on seven rows, it keeps the base
    assert kept.action == "wait" and kept.booster is base and "one constant" in kept.note


def test_a_refresh_changes_the_leaves_not_the_trees() -> None:
    base = train(*rows(3000, seed=1), FEATURES, PARAMS).booster
    at_cap = replace(PARAMS, max_trees=base.num_boosted_rounds())
    X_new, y_new, w_new = rows(3000, seed=7, intercept=-1.5)  # buying fell: the same trees, lower leaves
    before = [t["split_conditions"] for t in trees(base)]

    result = fine_tune(X_new, y_new, w_new, FEATURES, at_cap, base)

    assert result.action == "refresh" and result.rows == 3000
    assert result.rounds == base.num_boosted_rounds() == at_cap.max_trees
    old, new = trees(base), trees(result.booster)
    for a, b in zip(old, new, strict=True):  # the same splits ...
        for key in ("split_indices", "left_children", "right_children"):
            assert a[key] == b[key]
        inner = np.array(a["left_children"]) != -1  # (a leaf keeps its value in split_conditions)
        assert np.array_equal(np.array(a["split_conditions"])[inner], np.array(b["split_conditions"])[inner])
    leaf_values = [
        (np.array(a["split_conditions"])[leaf], np.array(b["split_conditions"])[leaf])
        for a, b in zip(old, new, strict=True)
        for leaf in [np.array(a["left_children"]) == -1]
    ]
    assert sum(not np.allclose(a, b) for a, b in leaf_values) == len(old)  # ... with new leaves in every tree
    assert [t["split_conditions"] for t in trees(base)] == before  # the base is untouched
    X_test, y_test, w_test = rows(3000, seed=8, intercept=-1.5)
    after, before_refresh = (evaluate(b, X_test, y_test, w_test)["logloss"] for b in (result.booster, base))
    assert after < before_refresh


def test_trees_are_earned_by_the_rows_up_to_warm_rounds_and_the_cap() -> None:
    base = train(*rows(2000, seed=1), FEATURES, replace(PARAMS, max_trees=100)).booster
    assert base.num_boosted_rounds() == 40
    roomy = replace(PARAMS, max_trees=100)
    assert fine_tune(*rows(260, seed=9), FEATURES, roomy, base).rounds == 46  # one tree per 50 rows
    assert fine_tune(*rows(5000, seed=9), FEATURES, roomy, base).rounds == 50  # at most warm_rounds
    near = replace(PARAMS, max_trees=43)
    assert fine_tune(*rows(5000, seed=9), FEATURES, near, base).rounds == 43  # no further than the cap
    assert base.num_boosted_rounds() == 40


def test_a_base_over_the_cap_is_cut_to_it_by_the_refresh() -> None:
    base = train(*rows(2000, seed=1), FEATURES, replace(PARAMS, num_rounds=80, max_trees=80)).booster
    result = fine_tune(*rows(1000, seed=10), FEATURES, PARAMS, base)
    assert result.action == "refresh" and result.booster.num_boosted_rounds() == PARAMS.max_trees == 48


def test_one_class_or_too_few_rows_learn_nothing() -> None:
    base = train(*rows(2000, seed=1), FEATURES, PARAMS).booster
    X, _, w = rows(500, seed=11)
    waited = fine_tune(X, np.zeros(500, dtype=np.float32), w, FEATURES, PARAMS, base)
    assert waited.action == "wait" and waited.booster is base and waited.rows == 0 and "single class" in waited.note
    assert plan_fine_tune(40, 199, PARAMS).action == "wait" and plan_fine_tune(40, 200, PARAMS).action == "add"
    assert worth_continuing(None, PARAMS) and worth_continuing(200, PARAMS) and not worth_continuing(199, PARAMS)


def test_no_training_goes_past_max_trees() -> None:
    with pytest.raises(ValueError, match="max_trees"):
        TrainParams(num_rounds=700)  # over the default cap of 600
    base = train(*rows(500, seed=1), FEATURES, PARAMS).booster
    with pytest.raises(ValueError, match="max_trees"):
        train(*rows(500, seed=2), FEATURES, PARAMS, base=base, rounds=9)  # 40 + 9 > 48
    with pytest.raises(ValueError, match="features"):
        fine_tune(*rows(500, seed=2), [f"g{i}" for i in range(4)], PARAMS, base)
