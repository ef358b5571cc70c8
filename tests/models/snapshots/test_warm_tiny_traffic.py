"""``retrain --mode warm`` night after night on a tiny-traffic archive (about six labelled sessions a day): the
booster stays within max_trees and never predicts one constant. (Adding 50 trees every night grew such a booster
to thousands of trees that predicted one value for every session.)"""

from dataclasses import replace
from datetime import UTC, timedelta

import numpy as np
import pytest
import xgboost as xgb
from click.testing import CliRunner

from models.behaviour.features import FEATURE_NAMES, FEATURES_VERSION
from models.history.archive import archive_days
from models.history.sampling import RecencySampler, Tier
from models.settings import ModelSettings
from models.snapshots.archive_rows import build_training_data
from models.snapshots.registry import Registry
from models.snapshots.retrain import NIGHTLY_PARAMS, nightly_config, retrain
from stream.app.settings import load_settings
from stream.cli import main
from stream.simulator import simulate_to_file

# small enough that 35 nights of six rows see every path: from scratch while the first snapshot learned from too
# few rows, waiting for rows, adding trees, refreshing leaves at the cap
PARAMS = replace(NIGHTLY_PARAMS, nthread=1, num_rounds=40, max_trees=50, warm_min_rows=40, warm_rows_per_round=10)


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    events = tmp / "events.jsonl.gz"
    simulate_to_file("stationary", days=45, users=170, seed=4, out=events)
    out = CliRunner().invoke(
        main,
        ["replay", str(events), "--seed", "4", "--decisions", str(tmp / "d.jsonl"), "--dead-letters",
         str(tmp / "dl.jsonl"), "--archive", str(tmp / "archive")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return tmp / "archive"


def test_nightly_warm_retrains_stay_bounded_and_never_constant(tiny_archive, tmp_path):
    settings = load_settings(env={})
    terms = settings.processing.offers.terms()
    days = archive_days(tiny_archive, "events")[:-1]
    every_row = RecencySampler(days[-1], (Tier(0, 400, 1.0),), seed=0)
    X = build_training_data(tiny_archive, every_row, settings.processing, terms, UTC).intent.arrays().X
    assert len(X) / len(days) < 8  # a tiny shop
    registry = Registry(tmp_path / "reg")
    notes = []
    for day in days[8:]:
        config = nightly_config(
            ModelSettings(), tiny_archive, tmp_path / "reg", day, 1, terms, mode="warm", compare=False, params=PARAMS
        )
        report = retrain(config, settings.processing)
        intent = report["models"]["intent"]
        notes.append(intent["note"])
        booster = registry.load(report["version"], FEATURES_VERSION).models["intent"]
        assert booster.num_boosted_rounds() <= PARAMS.max_trees, day
        p = booster.predict(xgb.DMatrix(X, feature_names=list(FEATURE_NAMES), missing=np.nan))
        assert np.ptp(p) > 0.0, f"{day}: one constant for every session"
        assert intent["trained_through"] <= (day - timedelta(days=1)).isoformat()
    said = " | ".join(notes)
    assert "trained from scratch" in said and "they wait" in said and "trees (one per 10" in said
    assert "rows refresh the leaves of 50 trees (max_trees)" in said
