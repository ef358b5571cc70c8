"""offerstream retrain end to end: the sample in the metadata, the gate, warm starts, and snapshot scoring
that gives the same decisions whatever the batch size."""

from datetime import date, timedelta

import orjson
import pytest
from click.testing import CliRunner

from models.behaviour.features import FEATURES_VERSION
from models.history.archive import archive_days
from models.snapshots.registry import Registry
from models.snapshots.schedule import RetrainScheduler, pending_requests, request_retrain
from stream.cli import main
from stream.simulator import simulate_to_file


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain")
    events = tmp / "events.jsonl.gz"
    simulate_to_file("stationary", days=5, users=2500, seed=4, out=events)
    out = CliRunner().invoke(
        main,
        ["replay", str(events), "--seed", "4", "--decisions", str(tmp / "d.jsonl"), "--dead-letters",
         str(tmp / "dl.jsonl"), "--archive", str(tmp / "archive")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return tmp / "archive", events


def retrain(archive_dir, registry, as_of, *extra):
    result = CliRunner().invoke(
        main,
        ["retrain", "--archive", str(archive_dir), "--registry", str(registry), "--as-of", as_of.isoformat(),
         "--seed", "1", "--threads", "1", "--json", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output[result.output.index("{") :])


def test_first_snapshot_is_promoted_with_its_sample_and_verdict(archive, tmp_path):
    archive_dir, _ = archive
    last = archive_days(archive_dir, "events")[-1]
    report = retrain(archive_dir, tmp_path / "reg", last)
    registry = Registry(tmp_path / "reg")
    assert registry.current_version() == report["version"] == "v00001"
    meta = registry.metadata("v00001")
    assert [(t["min_age_days"], t["max_age_days"], t["rate"]) for t in meta["sample"]] == [
        (0, 30, 1.0),
        (30, 90, 0.5),
        (90, 180, 0.1),
    ]
    recent = meta["sample"][0]
    assert recent["available"] == recent["sampled"] > 300
    assert meta["gate"]["promote"] and meta["gate"]["reason"] == "every model passed the gate"
    assert meta["features_version"] == FEATURES_VERSION and meta["code_version"]
    assert meta["data_window"]["last_day"] == last.isoformat()
    intent = meta["models"]["intent"]
    assert intent["modes"]["scratch"]["holdout"]["auc"] > 0.55  # better than a constant, on held-out days
    assert set(intent["modes"]) == {"scratch", "warm"}  # the comparison is always there
    snapshot = registry.load("v00001", FEATURES_VERSION)
    assert snapshot.has("intent") and snapshot.has("price")
    # Platt-scaled from out-of-fold margins; the registry scores through it
    assert intent["calibration"]["method"] == "platt" and snapshot.calibrations["intent"] is not None


def test_warm_fine_tunes_the_current_snapshot_on_new_days_only(archive, tmp_path):
    archive_dir, _ = archive
    days = archive_days(archive_dir, "events")[:-1]  # the last partition holds a few minutes: no labels yet
    first = retrain(archive_dir, tmp_path / "reg", days[-3], "--no-compare")
    report = retrain(archive_dir, tmp_path / "reg", days[-1], "--mode", "warm")
    intent = report["models"]["intent"]
    warm, scratch = intent["modes"]["warm"], intent["modes"]["scratch"]
    assert "fine-tuned the current snapshot" in warm["note"] and "trees (one per 50" in warm["note"]
    assert 0 < warm["rows"] < scratch["rows"]  # only the days the champion never trained on (two of them)
    assert intent["rows_learned"] == first["models"]["intent"]["rows_learned"] + warm["rows"]
    assert intent["trained_through"] == days[-2].isoformat()
    assert report["champion"] == "v00001" and report["version"] == "v00002"
    assert intent["champion_holdout"]["auc"] is not None
    assert first["models"]["intent"]["calibration"] is not None and intent["calibration"] is None  # trees changed


def test_warm_keeps_the_snapshot_on_too_few_new_rows_and_they_wait(archive, tmp_path):
    archive_dir, _ = archive
    days = archive_days(archive_dir, "events")[:-1]
    first = retrain(archive_dir, tmp_path / "reg", days[-2], "--no-compare")
    report = retrain(archive_dir, tmp_path / "reg", days[-1], "--mode", "warm", "--no-compare")
    intent, before = report["models"]["intent"], first["models"]["intent"]
    warm = intent["modes"]["warm"]
    assert warm["rows"] == 0 and "fewer than warm_min_rows (200): they wait" in warm["note"]
    # the snapshot learned nothing new, so the next night's fine-tune starts where it left off
    assert (intent["trained_through"], intent["rows_learned"]) == (before["trained_through"], before["rows_learned"])
    registry = Registry(tmp_path / "reg")
    kept, original = (registry.load(v, FEATURES_VERSION).models["intent"] for v in ("v00002", "v00001"))
    assert kept.save_raw() == original.save_raw()


def test_max_trees_bounds_the_rounds(archive, tmp_path):
    archive_dir, _ = archive
    result = CliRunner().invoke(
        main,
        ["retrain", "--archive", str(archive_dir), "--registry", str(tmp_path / "reg"), "--as-of", "2026-01-05",
         "--rounds", "50", "--max-trees", "40"],
    )  # fmt: skip
    assert result.exit_code == 2 and "must not exceed max_trees (40)" in result.output


def test_a_worse_challenger_stays_out_of_service(archive, tmp_path):
    archive_dir, _ = archive
    last = archive_days(archive_dir, "events")[-1]
    retrain(archive_dir, tmp_path / "reg", last, "--no-compare")
    # a challenger trained with one boosting round cannot match the champion on the same held-out days
    report = retrain(archive_dir, tmp_path / "reg", last, "--no-compare", "--rounds", "1", "--gate-tolerance", "0")
    registry = Registry(tmp_path / "reg")
    assert not report["gate"]["promote"] and "intent" in report["gate"]["reason"]
    assert registry.current_version() == "v00001" and "v00002" in registry.versions()
    assert [h["event"] for h in registry.history()] == ["promoted", "rejected"]


def test_an_empty_archive_trains_nothing_and_says_so(tmp_path):
    (tmp_path / "archive").mkdir()
    report = retrain(tmp_path / "archive", tmp_path / "reg", date(2026, 1, 5))
    assert report["version"] is None and not report["gate"]["promote"]
    assert not (tmp_path / "reg" / "CURRENT").exists()


def test_snapshot_scoring_is_identical_for_batch_sizes_1_and_500(archive, tmp_path):
    archive_dir, events = archive
    last = archive_days(archive_dir, "events")[-1]
    retrain(archive_dir, tmp_path / "reg", last - timedelta(days=1), "--no-compare")
    outs = []
    for size in ("1", "500"):
        out = tmp_path / f"d{size}.jsonl"
        result = CliRunner().invoke(
            main,
            ["replay", str(events), "--seed", "4", "--decisions", str(out), "--dead-letters", str(tmp_path / "x"),
             "--registry", str(tmp_path / "reg"), "--batch-size", size],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    first = orjson.loads(outs[0].splitlines()[0])
    assert first["model_versions"]["snapshot"] == "v00001"
    assert 0.0 < first["scores"]["intent_snapshot"] < 1.0 and "lift_snapshot" in first["scores"]


def test_a_corrupt_promoted_snapshot_is_refused_and_replay_goes_on_without_it(archive, tmp_path):
    archive_dir, events = archive
    last = archive_days(archive_dir, "events")[-1]
    retrain(archive_dir, tmp_path / "reg", last, "--no-compare")
    model = tmp_path / "reg" / "snapshots" / "v00001" / "intent.ubj"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(
        main,
        ["replay", str(events), "--seed", "4", "--decisions", str(out), "--dead-letters", str(tmp_path / "x"),
         "--registry", str(tmp_path / "reg")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "snapshot v00001 refused: sha256 mismatch" in result.output, result.output
    first = orjson.loads(out.read_bytes().splitlines()[0])
    assert first["model_versions"]["snapshot"] is None and "intent_snapshot" not in first["scores"]


def test_drift_requests_trigger_at_most_one_early_retrain_per_interval(tmp_path):
    from datetime import UTC, datetime

    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    s = RetrainScheduler(retrain_at="02:00", registry=tmp_path, drift_retrain_min_interval_s=6 * 3600, started=start)
    assert s.due(start) is None  # started after today's 02:00: tonight's run is tomorrow
    request_retrain(tmp_path, "worker-1", "drift alarm", now_ms=1)
    assert s.due(start) == "drift" and s.as_of("drift", start) == start.date()
    s.done("drift", start)
    assert pending_requests(tmp_path) == []
    request_retrain(tmp_path, "worker-2", "drift alarm", now_ms=2)
    assert s.due(start + timedelta(hours=1)) is None  # rate-limited
    assert s.due(start + timedelta(hours=6)) == "drift"
    tomorrow = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    assert s.due(tomorrow) == "nightly" and s.as_of("nightly", tomorrow) == date(2026, 1, 5)


def test_import_then_retrain_on_purchase_only_history(tmp_path):
    """A purchase-only backfill (no decision points) gives no rows: the report says so rather than crashing."""
    csv = tmp_path / "orders.csv"
    csv.write_text("customer,when,amount\n" + "".join(f"c{i % 7},2026-01-0{1 + i % 5},{10 + i}\n" for i in range(40)))
    result = CliRunner().invoke(
        main,
        ["import", str(csv), "--archive", str(tmp_path / "a"), "--map", "user_id=customer", "--map", "ts=when",
         "--ts-format", "%Y-%m-%d", "--map", "revenue=amount", "--set", "type=purchase"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = retrain(tmp_path / "a", tmp_path / "reg", date(2026, 1, 5))
    assert report["version"] is None and report["archive"]["events_replayed"] == 40
    assert "no rows" in report["models"]["intent"]["note"]
