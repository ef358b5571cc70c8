"""Freshness: the online intent learner beats a constant from the first day, and after an abrupt shift it is
back on the observed purchase rate while the nightly snapshot still predicts the old shop.

One simulated shop serves both claims (a module fixture, about a minute on two cores): the ``abrupt`` scenario
over a 4-day horizon for 40,000 shoppers, so the shift falls at 2026-01-07T00:00Z, cut four hours after the
end of the shift day. Its first two days *are* the stationary shop (same conditions, same events: checked
below), which is where the day-one claim is tested. Replay writes the archive; the nightly retrain runs as of
the last day before the shift, so its snapshot is the one serving the shift day (the next nightly has not run
yet). Labels: a decision's session bought iff it has a ``purchase`` event.

Sizes: the shop makes ~40 decisions a day per 1,000 shoppers (~1,650 a day here). The online learner's AUC on
the first day is small (about 0.54-0.60 on this simulator), so a 95% interval clear of 0.5 needs this many.

The online score is compared with the snapshot's on calibration in the large, ``|mean score − observed rate|``.
Log loss is reported in failure messages but not asserted: after a day or two of learning the online
learner's per-session probabilities are still noisy (its log loss is close to a constant's at the observed
rate), so what is asserted is the level it tracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from bench.freshness import (
    DAY_MS,
    HOUR_MS,
    START_MS,
    Decisions,
    day_of_ms,
    load_decisions,
    purchased_sessions,
    replay_settings,
    simulate_events,
    snapshot_intent,
)
from models.snapshots.quality import auc_delong, auc_summary, calibration
from models.snapshots.registry import Registry
from models.snapshots.retrain import retrain_nightly
from stream.app.replay import replay_files
from stream.simulator import Simulation, get_scenario
from stream.simulator.scenarios import NEUTRAL

USERS = 40_000
SEED = 11
HORIZON_DAYS = 4
SHIFT_MS = START_MS + HORIZON_DAYS // 2 * DAY_MS
AFTER_SHIFT = (6, 24)  # hours after the shift over which the two models are compared


@dataclass
class Shop:
    decisions: Decisions
    snapshot: np.ndarray  # the pre-shift nightly snapshot's intent score of every decision
    snapshot_version: str


def run_shop(workdir: Path, users: int = USERS, seed: int = SEED, learners: bool = True) -> Shop:
    """Simulate, replay (archive on), retrain as of the day before the shift, score every decision with it."""
    events = workdir / "events.jsonl"
    simulate_events("abrupt", HORIZON_DAYS, users, seed, events, until_ms=SHIFT_MS + 28 * HOUR_MS)
    settings = replay_settings(seed, workdir / "archive", learners=learners)
    replay_files([events], settings, workdir / "decisions.jsonl", workdir / "dead.jsonl")
    report = retrain_nightly(
        workdir / "archive",
        workdir / "registry",
        day_of_ms(SHIFT_MS) - timedelta(days=1),
        settings.models,
        settings.processing,
        settings.processing.offers.terms(),
        seed,
    )
    assert report["gate"]["promote"], report["gate"]
    snapshot = Registry(workdir / "registry").load_current()
    assert snapshot is not None
    decisions = load_decisions(workdir / "decisions.jsonl", purchased_sessions(events))
    return Shop(decisions, snapshot_intent(snapshot, decisions.features), snapshot.version)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return run_shop(tmp_path_factory.mktemp("freshness"))


def window(d: Decisions, start_ms: int, hours: tuple[float, float]) -> np.ndarray:
    return d.between(start_ms + int(hours[0] * HOUR_MS), start_ms + int(hours[1] * HOUR_MS))


def shift_numbers(shop: Shop) -> dict[str, Any]:
    """Observed rate and each model's calibration the day before the shift and in the compared hours after."""
    d = shop.decisions
    out: dict[str, Any] = {}
    for name, mask in (("before", window(d, SHIFT_MS, (-24, 0))), ("after", window(d, SHIFT_MS, AFTER_SHIFT))):
        y = d.purchased[mask]
        out[name] = {
            "n": int(mask.sum()),
            "rate": float(y.mean()),
            "online": calibration(d.online[mask], y),
            "snapshot": calibration(shop.snapshot[mask], y),
        }
    return out


def check_tracks_the_shift(shop: Shop) -> dict[str, Any]:
    """The assertions of the shift test, as a function so that a variant shop can be checked by hand."""
    numbers = shift_numbers(shop)
    before, after = numbers["before"], numbers["after"]
    assert not np.isnan(shop.decisions.online).any(), "decisions carry no scores.intent_online (learners off?)"
    assert after["n"] >= 800, numbers
    # the shop did change, and the snapshot had the old shop right: its error afterwards is the shift's
    assert before["rate"] - after["rate"] > 0.05, numbers
    assert before["snapshot"]["gap"] < 0.05, numbers
    assert after["snapshot"]["gap"] > 0.05, numbers
    # the online learner is back on the new rate (seeds 11-15: gap <= 0.009, the snapshot's 0.086-0.114)
    assert after["online"]["gap"] < 0.03, numbers
    assert after["online"]["gap"] < after["snapshot"]["gap"] - 0.04, numbers
    return numbers


# -- fast checks --------------------------------------------------------------------------------------


def brute_auc(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y > 0.5], s[y <= 0.5]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_counts_ties_as_half_and_a_constant_scores_one_half():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(float)
    s = np.round(rng.random(300) + 0.3 * y, 1)  # coarse: many ties
    auc, se = auc_delong(s, y)
    assert auc == pytest.approx(brute_auc(s, y), abs=1e-12)
    assert 0.0 < se < 0.1
    assert auc_delong(np.full(300, 0.37), y)[0] == 0.5  # a constant predictor, by definition
    assert auc_delong(y.copy(), y) == (1.0, 0.0)
    assert math.isnan(auc_delong(s, np.zeros(300))[0])


def test_the_first_half_of_abrupt_is_the_stationary_shop():
    """So the day-one test, run on the abrupt shop's first day, is a test on the stationary scenario."""
    abrupt, stationary = get_scenario("abrupt"), get_scenario("stationary")
    half = HORIZON_DAYS / 2
    for day in np.linspace(0.0, half, 97)[:-1]:
        assert abrupt.conditions_at(day, HORIZON_DAYS, day % 7) == NEUTRAL
        assert stationary.conditions_at(day, HORIZON_DAYS, day % 7) == NEUTRAL
    assert abrupt.max_traffic == stationary.max_traffic
    a = Simulation("abrupt", HORIZON_DAYS, users=2_000, seed=SEED)
    s = Simulation("stationary", HORIZON_DAYS, users=2_000, seed=SEED)
    while (ev := a.next_event()) is not None and ev["ts"] < SHIFT_MS:
        assert s.next_event() == ev


@pytest.mark.slow
def test_snapshot_scores_of_the_logged_features_are_what_the_worker_scores(tmp_path):
    """The shortcut the bench and these tests take: the decision record's ``features`` give the snapshot the
    very input the worker gave it, so scoring them equals replaying with the registry (``intent_snapshot``)."""
    events = tmp_path / "events.jsonl"
    simulate_events("abrupt", 4, 1_500, 3, events, until_ms=START_MS + 3 * DAY_MS)
    settings = replay_settings(3, tmp_path / "archive")
    replay_files([events], settings, tmp_path / "d1.jsonl", tmp_path / "x1.jsonl")
    assert retrain_nightly(
        tmp_path / "archive",
        tmp_path / "registry",
        day_of_ms(START_MS + DAY_MS),
        settings.models,
        settings.processing,
        settings.processing.offers.terms(),
        3,
    )["version"]
    with_registry = replay_settings(3, None, registry=tmp_path / "registry")
    replay_files([events], with_registry, tmp_path / "d2.jsonl", tmp_path / "x2.jsonl")
    logged = [orjson.loads(line) for line in (tmp_path / "d2.jsonl").read_bytes().splitlines()]
    snapshot = Registry(tmp_path / "registry").load_current()
    assert snapshot is not None and len(logged) > 100
    ours = snapshot_intent(snapshot, [d["features"] for d in logged])
    assert [d["scores"]["intent_snapshot"] for d in logged] == [round(float(p), 6) for p in ours]


# -- the claims ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_online_intent_beats_a_constant_from_day_one(shop):
    """Per day of the stationary half, the online score's AUC (DeLong 95% interval) is clear of 0.5, the AUC
    of any constant predictor. Day one starts with a learner that knows nothing (it predicts 0.5 until the
    first session closes). Seeds 11-15 give day-one AUC 0.565, 0.554, 0.541, 0.538, 0.535."""
    d = shop.decisions
    for day in range(HORIZON_DAYS // 2):
        mask = window(d, START_MS + day * DAY_MS, (0, 24))
        summary = auc_summary(d.online[mask], d.purchased[mask])
        assert mask.sum() >= 1_000, (day, int(mask.sum()))
        assert summary["lo95"] is not None and summary["lo95"] > 0.5, (day, int(mask.sum()), summary)


@pytest.mark.slow
def test_online_learner_tracks_the_shift_before_the_next_nightly_snapshot(shop):
    """Hours 6-24 after the shift, still served by the snapshot trained before it: the online learner's mean
    score is within 0.03 of the observed purchase rate and at least 0.04 closer to it than the snapshot's."""
    check_tracks_the_shift(shop)
