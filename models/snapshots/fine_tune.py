"""The fine-tune of a snapshot's booster on new rows: a few trees earned by the rows, a leaf refresh at the cap.

``retrain --mode warm`` and the lab's ``warm`` strategy both call :func:`fine_tune`. Adding a fixed 50 trees
every night, whatever the night's rows, grew a booster on a shop with a handful of labelled sessions a day to
thousands of trees that predicted one constant: a tree cannot split on a handful of rows (``min_child_weight``),
so each added tree only moved the intercept. What the fine-tune does instead (:func:`plan_fine_tune`):

* **wait** while the new rows are fewer than ``warm_min_rows`` or hold a single class: nothing is learned and the
  rows are left for a later night (the lab's ``warm`` trains on everything labelled since its last training,
  ``retrain --mode warm`` on every row newer than the data the current snapshot learned);
* **add** one tree per ``warm_rows_per_round`` new rows, at most ``warm_rounds`` (``xgb_model``, with the
  learning rate and early stopping of a scratch training), never past ``max_trees``;
* **refresh** once the booster holds ``max_trees`` trees: the trees keep their splits and their leaves are
  re-estimated on the new rows (XGBoost's ``refresh`` updater, ``process_type=update``, ``refresh_leaf``); the
  tree count stays put. A base over the cap (trained under an older setting) keeps its first ``max_trees``.

A refresh replaces each leaf by what the new rows alone say (a leaf they reach with less than
``min_child_weight`` of hessian becomes 0): on seven rows it turns a booster into a constant. So it too waits for
``warm_min_rows`` rows, and a refresh that would still predict one value for all the new rows is not kept (the
rows wait). The lab's measurements of these choices are in docs/results/lab.md.

>>> p = TrainParams(num_rounds=100, max_trees=120)
>>> plan_fine_tune(100, 7, p)
FineTune(action='wait', rounds=0, reason='7 new rows, fewer than warm_min_rows (200): they wait')
>>> plan_fine_tune(100, 260, p)  # one tree per 50 rows
FineTune(action='add', rounds=6, reason='260 new rows: 6 trees (one per 50, at most 10)')
>>> plan_fine_tune(115, 5000, p).rounds  # no further than the cap
5
>>> plan_fine_tune(120, 5000, p).action
'refresh'
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from models.snapshots.training import TrainParams, TrainResult, check_base, train


@dataclass(frozen=True)
class FineTune:
    """What one fine-tune does: ``wait`` (learn nothing), ``add`` ``rounds`` trees, or ``refresh`` the leaves of
    ``rounds`` trees; ``reason`` in words."""

    action: Literal["wait", "add", "refresh"]
    rounds: int
    reason: str


def plan_fine_tune(trees: int, rows: int, params: TrainParams, both_classes: bool = True) -> FineTune:
    """What fine-tuning a booster of ``trees`` trees on ``rows`` new rows does under ``params``."""
    if rows < params.warm_min_rows:
        return FineTune("wait", 0, f"{rows} new rows, fewer than warm_min_rows ({params.warm_min_rows}): they wait")
    if not both_classes:
        return FineTune("wait", 0, f"{rows} new rows of a single class: they wait")
    if trees >= params.max_trees:
        kept = min(trees, params.max_trees)
        return FineTune("refresh", kept, f"{rows} new rows refresh the leaves of {kept} trees (max_trees)")
    earned = min(params.warm_rounds, math.ceil(rows / params.warm_rows_per_round))
    rounds = min(earned, params.max_trees - trees)
    cap = f", up to max_trees ({params.max_trees})" if rounds < earned else ""
    reason = (
        f"{rows} new rows: {rounds} trees (one per {params.warm_rows_per_round}, at most {params.warm_rounds}{cap})"
    )
    return FineTune("add", rounds, reason)


def worth_continuing(rows_learned: int | None, params: TrainParams) -> bool:
    """Whether a booster that learned from ``rows_learned`` rows in all is worth fine-tuning: one that learned
    from fewer than ``warm_min_rows`` is retrained from scratch instead (None: not known, assumed so)."""
    return rows_learned is None or rows_learned >= params.warm_min_rows


def fine_tune(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    w: npt.ArrayLike,
    feature_names: Sequence[str],
    params: TrainParams | None,
    base: xgb.Booster,
) -> TrainResult:
    """Fine-tune ``base`` on the new rows as :func:`plan_fine_tune` says; ``base`` itself is not modified.

    The result's ``action`` is ``wait`` (its booster is ``base``, its ``rows`` 0), ``add`` or ``refresh``; its
    ``note`` gives the reason; it never holds more than ``max_trees`` trees.
    """
    params = params or TrainParams()
    check_base(base, feature_names)
    labels = np.asarray(y, dtype=np.float32).reshape(-1)
    positives = int(np.count_nonzero(labels >= 0.5))
    trees = base.num_boosted_rounds()
    plan = plan_fine_tune(trees, len(labels), params, both_classes=0 < positives < len(labels))
    if plan.action == "wait":
        return TrainResult(base, 0.0, 0.0, 0, trees, trees - 1, 0, warm=True, action="wait", note=plan.reason)
    if plan.action == "add":
        added = train(X, y, w, feature_names, params, base=base, rounds=plan.rounds)
        kept = added.rounds - trees
        stopped = f"; early stopping kept {kept}" if kept < plan.rounds else ""
        return replace(added, note=plan.reason + stopped)
    return _refresh(X, labels, w, feature_names, params, base, plan)


def _refresh(
    X: npt.ArrayLike,
    y: npt.NDArray[np.float32],
    w: npt.ArrayLike,
    feature_names: Sequence[str],
    params: TrainParams,
    base: xgb.Booster,
    plan: FineTune,
) -> TrainResult:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    data = xgb.DMatrix(
        np.asarray(X, dtype=np.float32),
        label=y,
        weight=np.asarray(w, dtype=np.float32).reshape(-1),
        feature_names=list(feature_names),
        missing=np.nan,
        nthread=params.nthread or None,
    )
    xgb_params = params.to_xgb() | {"process_type": "update", "updater": "refresh", "refresh_leaf": True}
    del xgb_params["tree_method"]  # the updater replaces it (xgboost warns when both are given)
    # process_type=update walks the base's trees in order and keeps only as many as there are rounds
    booster = xgb.train(xgb_params, data, num_boost_round=plan.rounds, xgb_model=base, verbose_eval=False)
    collapsed = np.ptp(booster.predict(data)) == 0.0 and np.ptp(base.predict(data)) > 0.0
    if collapsed:  # the rows emptied every leaf they reach: keep the base, and the rows for a later night
        booster, reason = base, f"{y.shape[0]} new rows would refresh the leaves into one constant: they wait"
    trees = booster.num_boosted_rounds()
    return TrainResult(
        booster=booster,
        cpu_s=time.process_time() - cpu0,
        wall_s=time.perf_counter() - wall0,
        rows=0 if collapsed else int(y.shape[0]),
        rounds=trees,
        best_iteration=trees - 1,
        validation_rows=0,
        warm=True,
        action="wait" if collapsed else "refresh",
        note=reason if collapsed else plan.reason,
    )
