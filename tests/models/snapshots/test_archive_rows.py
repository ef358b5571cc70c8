"""The nightly trainer rebuilds, from the archive, exactly the features the worker used at each decision point."""

import math
from datetime import date

import orjson
import pytest
from factories import settings as settings_with

from models.behaviour.features import FEATURE_NAMES
from models.history.archive import archive_days, read_day
from models.history.sampling import RecencySampler, Tier
from models.snapshots.archive_rows import build_training_data
from stream.app.replay import replay_files
from stream.simulator import simulate_to_file


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainset")
    events = tmp / "events.jsonl.gz"
    simulate_to_file("seasonal", days=4, users=800, seed=3, out=events)
    settings = settings_with(seed=3, models={"archive": str(tmp / "archive")})
    processor, _, _ = replay_files([events], settings, tmp / "decisions.jsonl", tmp / "dead.jsonl")
    decisions = [orjson.loads(line) for line in (tmp / "decisions.jsonl").read_bytes().splitlines()]
    return settings, tmp / "archive", decisions, processor


def _same(a, b):
    return (a is None and math.isnan(b)) or a == b


def test_archive_holds_every_valid_event_and_decision(replayed):
    _, archive, decisions, processor = replayed
    archived = sum(len(read_day(archive, "events", d)) for d in archive_days(archive, "events"))
    archived_decisions = [r for d in archive_days(archive, "decisions") for r in read_day(archive, "decisions", d)]
    assert archived == processor.counters["events"] > 10_000
    assert sorted(r["decision_id"] for r in archived_decisions) == sorted(d["decision_id"] for d in decisions)


def test_features_rebuilt_from_the_archive_equal_those_the_worker_used(replayed):
    settings, archive, decisions, _ = replayed
    last = archive_days(archive, "events")[-1]
    sampler = RecencySampler(last, (Tier(0, 1000, 1.0),), seed=0)
    data = build_training_data(
        archive, sampler, settings.processing, settings.processing.offers.terms(), keep_features=True
    )
    assert len(decisions) > 50
    for d in decisions:
        rebuilt = data.features_seen[d["event_id"]]
        mismatched = [n for n in FEATURE_NAMES if not _same(d["features"][n], rebuilt[n])]
        assert not mismatched, (d["event_id"], {n: (d["features"][n], rebuilt[n]) for n in mismatched})


def test_rows_are_labelled_sessions_with_decisions(replayed):
    settings, archive, decisions, _ = replayed
    last = archive_days(archive, "events")[-1]
    data = build_training_data(
        archive, RecencySampler(last, (Tier(0, 1000, 1.0),)), settings.processing, settings.processing.offers.terms()
    )
    sessions = {d["session_id"] for d in decisions}
    # every decision session gives one intent row, except those still open at the end (no label yet)
    assert len(data.intent) + data.unlabelled_sessions == len(sessions)
    assert len(data.price) == len(data.intent)  # one decision per session by default
    X, y, w, days = data.intent.arrays()
    assert X.shape == (len(data.intent), len(FEATURE_NAMES)) and 0 < y.sum() < len(y)
    assert set(w.tolist()) == {1.0} and date.fromordinal(int(days.max())) <= last
    _, _, pw, _ = data.price.arrays()
    assert pw.min() >= 1.0  # inverse propensities


def test_the_sample_thins_old_days_and_keeps_sessions_whole(replayed):
    settings, archive, _, _ = replayed
    last = archive_days(archive, "events")[-1]
    sampler = RecencySampler(last, (Tier(0, 2, 1.0), Tier(2, 30, 0.5)), seed=1)
    data = build_training_data(archive, sampler, settings.processing, settings.processing.offers.terms())
    recent, old = sampler.report()
    assert recent["sampled"] == recent["available"] > 0
    assert 0.3 * old["available"] < old["sampled"] < 0.7 * old["available"]
    assert len(data.intent) == recent["sampled"] + old["sampled"]
    _, _, w, _ = data.intent.arrays()
    assert sorted(set(w.tolist())) == [1.0, 2.0]
