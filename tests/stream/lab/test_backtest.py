"""The strategy lab's invariants: one stream for all, no forecast of a learned row, honest figures."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from factories import simulated_events

from models.behaviour.features import FEATURE_NAMES
from stream.app.settings import load_settings
from stream.cli import main
from stream.lab.backtest import (
    LabConfig,
    compare,
    probe_rows,
    recommendation,
    recommended,
    run_backtest,
    verdict,
)
from stream.lab.rows import LabRows, collect_rows
from stream.lab.strategies import Full, days_of


@functools.cache
def lab():
    events = simulated_events("abrupt", 6, 3000, seed=5)
    rows = collect_rows(events, load_settings(env={}).processing)
    shift = {"day": "2026-01-08", "label": "the shift"}  # abrupt over 6 days: the competitor arrives on day 3
    return events, rows, run_backtest(rows, LabConfig(seed=5, window_days=2), markers=[shift])


def _end_ms(day: str) -> int:
    d = date.fromisoformat(day) + timedelta(days=1)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def test_every_strategy_sees_the_same_events_in_the_same_order():
    events, rows, result = lab()
    digest = hashlib.blake2b(digest_size=16)
    for ev in events:
        digest.update(ev["event_id"].encode() + b"\x00")
    assert result["source"]["events_digest"] == digest.hexdigest()
    assert result["source"]["events"] == len(events)
    assert len({s["stream_digest"] for s in result["strategies"].values()}) == 1
    assert set(result["strategies"]) == {"full", "sampled", "warm", "online", "hybrid", "base_rate"}
    decided_per_day: dict[str, int] = {}
    for ms in rows.decision_ms:
        day = datetime.fromtimestamp(int(ms) / 1000, UTC).date().isoformat()
        decided_per_day[day] = decided_per_day.get(day, 0) + 1
    for s in result["strategies"].values():
        assert {d["day"]: d["n"] for d in s["daily"] if d["n"]} == decided_per_day


def test_no_strategy_is_evaluated_on_data_it_trained_on():
    _, rows, result = lab()
    strategies = result["strategies"]
    assert all(s["leaks"] == 0 for s in strategies.values())  # the probe rows count too: never trained on
    for name in ("full", "sampled", "warm"):
        assert strategies[name]["daily"][0]["auc"] is None, f"{name} has no model before its first night"
    trainable = ~probe_rows(rows, LabConfig(seed=5))
    for night in strategies["full"]["daily"]:
        labelled = int(np.count_nonzero((rows.closed_ms < _end_ms(night["day"])) & trainable))
        assert night["train_rows"] == labelled, "full retraining uses every row labelled by midnight, no later one"
    closed_that_day = [
        int(
            np.count_nonzero(
                (rows.closed_ms >= _end_ms(d["day"]) - 86_400_000) & (rows.closed_ms < _end_ms(d["day"])) & trainable
            )
        )
        for d in strategies["warm"]["daily"]
    ]
    warm = [d["train_rows"] for d in strategies["warm"]["daily"]]
    assert warm == _warm_rows(rows, strategies["warm"]["daily"], trainable)
    assert 0 in warm[1:] and max(warm[2:]) > 0, "warm both waited for rows and fine-tuned on them"
    assert [d["train_rows"] for d in strategies["online"]["daily"]] == closed_that_day


def _warm_rows(rows: LabRows, daily: list[dict], trainable: np.ndarray, every: int = 1) -> list[int]:
    """Each night's training rows of ``warm``, recomputed: from scratch on every row labelled by midnight until it
    has learned from ``warm_min_rows`` rows, then the rows labelled since its last training, once they are that
    many (before that it learns nothing: 0); a night with no rows or a single class reports them untrained."""
    min_rows = LabConfig().params.warm_min_rows
    learned, since, nights, out = 0, 0, 0, []
    for d in daily:
        nights += 1
        end = _end_ms(d["day"])
        if learned and nights < every:
            out.append(0)
            continue
        scratch = learned < min_rows
        pick = (rows.closed_ms < end) & trainable & (scratch | (rows.closed_ms >= since))
        n = int(np.count_nonzero(pick))
        if n == 0 or len(np.unique(rows.y[pick])) < 2:  # nothing to learn: the rows it had, untrained
            out.append(n)
            continue
        if not scratch and n < min_rows:  # too few to fine-tune on: they wait
            out.append(0)
            continue
        out.append(n)
        learned, since, nights = n if scratch else learned + n, end, 0
    return out


def test_the_leak_check_catches_a_strategy_that_learns_a_day_before_forecasting_it():
    _, rows, _ = lab()

    class Peeking(Full):
        def predict(self, day):
            self.nightly(day)  # trains on the day's labelled rows first: a look-ahead
            return super().predict(day)

    strategy = Peeking(rows, seed=5)
    for day in days_of(rows):
        strategy.observe(day)
        strategy.predict(day)
    assert strategy.leaks > 0


def test_figures_are_measured_not_made_up():
    _, _, result = lab()
    for s in result["strategies"].values():
        summary = s["summary"]
        assert 0.3 < summary["auc"] < 1.0 and summary["logloss"] > 0.0
        assert summary["train_cpu_s"] > 0.0 and summary["train_rows"] > 0
        assert summary["days_compared"] == result["comparison"]["days"] >= 4
    assert result["comparison"]["best"] in result["strategies"]
    assert result["comparison"]["best"] in result["recommendation"]
    assert "Forgetting (probe log loss, last night minus best night): " in result["recommendation"]


def test_the_probe_is_a_seeded_share_of_the_first_week_and_its_forgetting_is_reported():
    _, rows, result = lab()
    held_out = probe_rows(rows, LabConfig(seed=5))
    days = rows.decision_days()
    first_days = min(7, (days.max() - days.min() + 1) // 4)  # a week, at most a quarter of the run
    assert np.all(days[held_out] < days.min() + first_days)
    share = held_out.sum() / np.count_nonzero(days < days.min() + first_days)
    assert 0.1 < share < 0.3 and result["probe"]["rows"] == int(held_out.sum())
    for s in result["strategies"].values():
        f = s["forgetting"]
        assert f["rows"] == int(held_out.sum()) and f["daily"], "probed every night after the probe's last day"
        assert f["forgetting"] == round(f["final_logloss"] - f["best_logloss"], 6) >= 0.0


def test_the_days_around_a_marked_change_are_compared_on_their_own():
    _, _, result = lab()
    before, after = result["periods"]
    assert (before["when"], before["from"], before["to"]) == ("before", "2026-01-06", "2026-01-07")
    assert (after["when"], after["from"], after["to"]) == ("from", "2026-01-08", "2026-01-09")
    for period in (before, after):
        days = {period["from"], period["to"]}
        for name, figures in period["strategies"].items():
            daily = [d["logloss"] for d in result["strategies"][name]["daily"] if d["day"] in days]
            assert figures["logloss"] == pytest.approx(sum(daily) / len(daily), abs=1e-6)
    best_after = after["comparison"]["best"]
    assert f"2 days from the shift (2026-01-08 to 2026-01-09): {best_after} most accurate" in result["recommendation"]


def test_retrain_every_other_night_trains_on_what_was_labelled_since():
    _, rows, _ = lab()
    result = run_backtest(rows, LabConfig(seed=5, strategies=("full", "warm"), retrain_every=2))
    trainable = ~probe_rows(rows, LabConfig(seed=5))
    full, warm = (result["strategies"][n]["daily"] for n in ("full", "warm"))
    assert [d["trees"] is not None for d in full] == [i % 2 == 0 for i in range(len(full))]
    assert full[0]["train_rows"] > 0 and full[1]["train_rows"] == 0, "the first night trains the first model"
    # warm learns (or waits) every other night, on what was labelled since its last training
    assert [d["train_rows"] for d in warm] == _warm_rows(rows, warm, trainable, every=2)


def _days(logloss: list[float], cpu: float) -> list[dict]:
    return [
        {"day": f"2026-01-{i + 1:02d}", "auc": 0.7, "logloss": x, "train_cpu_s": cpu / len(logloss)}
        for i, x in enumerate(logloss)
    ]


def test_recommendation_is_the_cheapest_strategy_within_the_noise_of_the_best():
    rng = np.random.default_rng(0)
    base = 0.6 + 0.02 * rng.standard_normal(20)
    daily = {
        "costly": _days(list(base), 100.0),
        "cheap_tie": _days(list(base + 0.001 * rng.standard_normal(20)), 10.0),
        "cheap_worse": _days(list(base + 0.05), 1.0),
    }
    common = [d["day"] for d in daily["costly"]]
    summaries = {
        n: {
            "logloss": float(np.mean([d["logloss"] for d in ds])),
            "auc": 0.7,
            "train_cpu_s": 100.0 if n == "costly" else 10.0 if n == "cheap_tie" else 1.0,
        }
        for n, ds in daily.items()
    }
    comparison = compare(daily, common, summaries)
    assert comparison["versus_best"]["cheap_worse"]["logloss_diff"]["lo95"] > 0
    assert recommended(comparison, summaries) == "cheap_tie"
    text = recommendation(comparison, summaries)
    assert "Recommendation: Run cheap_tie: as accurate as costly" in text and "cheap_worse: log loss +0.0500" in text
    _assert_one_sentence(verdict(comparison, summaries))


def test_a_tie_is_preferred_for_its_compute_only_when_it_saves_a_fifth():
    rng = np.random.default_rng(2)
    base = 0.6 + 0.02 * rng.standard_normal(20)
    wobble = 0.002 * np.resize([1.0, -1.0], 20)  # mean 0: the tie is behind by 0.0001 on average, well within noise
    logloss = {"best": base, "tie": base + 0.0001 + wobble}
    comparison, summaries = _lab(logloss, {"best": 22.1, "tie": 21.8})  # 1 % less: within the timing's noise
    assert comparison["best"] == "best" and comparison["versus_best"]["tie"]["logloss_diff"]["lo95"] <= 0
    assert recommended(comparison, summaries) == "best"
    assert verdict(comparison, summaries).startswith("Run best: the most accurate")
    comparison, summaries = _lab(logloss, {"best": 22.1, "tie": 17.6})  # a fifth less
    assert recommended(comparison, summaries) == "tie"
    assert verdict(comparison, summaries).endswith("against 22.1 (1.3× less).")


def _assert_one_sentence(text: str) -> None:
    assert text.endswith(".") and ". " not in text and len(text.split()) <= 45, text


def _lab(logloss: dict[str, np.ndarray], cpu: dict[str, float]) -> tuple[dict, dict]:
    daily = {n: _days(list(x), cpu[n]) for n, x in logloss.items()}
    common = [d["day"] for d in next(iter(daily.values()))]
    summaries = {n: {"logloss": float(np.mean(x)), "auc": 0.6, "train_cpu_s": cpu[n]} for n, x in logloss.items()}
    return compare(daily, common, summaries), summaries


def test_no_model_is_recommended_that_does_not_beat_the_base_rate_beyond_noise():
    rng = np.random.default_rng(1)
    base = 0.45 + 0.03 * rng.standard_normal(30)
    noisy = 0.004 * rng.standard_normal(30)
    # "lucky" is the most accurate on average, but by less than the days' noise: it does not beat knowing nothing
    comparison, summaries = _lab(
        {"base_rate": base, "lucky": base - 0.001 + noisy, "worse": base + 0.02},
        {"base_rate": 0.01, "lucky": 50.0, "worse": 5.0},
    )
    assert comparison["best"] == "lucky" and comparison["versus_base_rate"]["lucky"]["hi95"] >= 0
    assert recommended(comparison, summaries) is None
    said = verdict(comparison, summaries)
    assert said.startswith("Run no model: none beats predicting the base rate beyond noise")
    _assert_one_sentence(said)
    assert "Against the base rate (knowing nothing" in recommendation(comparison, summaries)

    # one that does beat it, and a cheaper one as good as the best that does not: the one that does is run
    comparison, summaries = _lab(
        {"base_rate": base, "model": base - 0.02 + noisy, "cheap": base - 0.001 + noisy, "worse": base + 0.02},
        {"base_rate": 0.01, "model": 50.0, "cheap": 1.0, "worse": 5.0},
    )
    assert comparison["versus_base_rate"]["model"]["hi95"] < 0 <= comparison["versus_base_rate"]["cheap"]["hi95"]
    assert recommended(comparison, summaries) == "model"
    assert verdict(comparison, summaries).startswith("Run model: the most accurate (mean daily log loss")

    comparison, summaries = _lab({"base_rate": base, "model": base + 0.01 + noisy}, {"base_rate": 0.0, "model": 9.0})
    assert recommended(comparison, summaries) is None
    assert verdict(comparison, summaries).startswith("Run no model: knowing nothing (the base rate")


def test_cli_writes_results_json(tmp_path):
    out = tmp_path / "lab"
    result = CliRunner().invoke(
        main,
        ["backtest", "--scenario", "stationary", "--days", "3", "--users", "1500", "--strategies", "full,online",
         "--seed", "3", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = orjson.loads((out / "results.json").read_bytes())
    assert set(data["strategies"]) == {"full", "online"} == set(data["price"]["strategies"])
    assert all(s["summary"]["profit_fraction"] is not None for s in data["price"]["strategies"].values())
    for s in data["strategies"].values():
        for day in s["daily"]:
            assert {"day", "auc", "logloss", "train_cpu_s", "train_rows"} <= set(day)
        assert any("profit" in day for day in s["daily"]), "a scenario's days carry the decision value"
    assert isinstance(data["recommendation"], str) and data["recommendation"]
    assert "full" in result.output and "online" in result.output
    assert_report_agrees_with_json((out / "report.html").read_text(), data)
    assert {p.name for p in (out / "plots").iterdir()} == {
        "logloss.svg", "logloss_gap.svg", "auc.svg", "forgetting.svg", "train_cpu.svg", "accuracy_vs_compute.svg",
        "decision_value.svg",
    }  # fmt: skip


class _Page(HTMLParser):
    """The tables (by id), paragraphs (by id) and the embedded results of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.where: tuple[str, str] | None = None  # (tag, id) being read
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        ident = dict(attrs).get("id")
        if ident is not None and tag in ("table", "p", "script"):
            self.where = (tag, ident)
            if tag == "table":
                self.tables[ident] = []
            else:
                self.texts[ident] = ""
        elif self.where is not None and self.where[0] == "table" and tag == "tr":
            self.tables[self.where[1]].append([])

    def handle_endtag(self, tag):
        if self.where is not None and tag == self.where[0]:
            self.where = None

    def handle_data(self, data):
        if self.where is None:
            return
        tag, ident = self.where
        if tag == "table" and self.tables[ident] and self.lasttag == "td":
            self.tables[ident][-1].append(data)
        elif tag != "table":
            self.texts[ident] += data


def _assert_table_agrees(rows: list[list[str]], data: dict) -> None:
    cells = {row[0]: row for row in rows if row}
    assert set(cells) == set(data["strategies"])
    for name, s in data["strategies"].items():
        m = s["summary"]
        row = cells[name]
        if m.get("profit_fraction") is not None:
            assert abs(float(row[1].split()[0]) - m["profit_fraction"]) <= 0.5e-4 + 1e-12
        assert int(row[2]) == m["days_compared"]
        for cell, value, places in ((row[3], m["auc"], 4), (row[4], m["logloss"], 4), (row[6], m["train_cpu_s"], 2)):
            assert abs(float(cell) - value) <= 0.5 * 10**-places + 1e-12, (name, cell, value)
        assert int(row[7].replace(",", "")) == m["train_rows"]
        assert int(row[10]) == s["leaks"]


def assert_report_agrees_with_json(page: str, data: dict) -> None:
    parsed = _Page()
    parsed.feed(page)
    assert orjson.loads(parsed.texts["results"]) == data
    assert parsed.texts["verdict"] == data["verdict"] and parsed.texts["recommendation"] == data["recommendation"]
    assert page.index('id="verdict"') < page.index('id="summary"') < page.index('id="recommendation"')
    _assert_table_agrees(parsed.tables["summary"], data)
    if "price" in data:
        assert parsed.texts["price-verdict"] == data["price"]["verdict"]
        assert parsed.texts["price-recommendation"] == data["price"]["recommendation"]
        _assert_table_agrees(parsed.tables["price-summary"], data["price"])


def test_the_cli_names_every_strategy_and_refuses_others(tmp_path):
    from stream.cli.lab_command import STRATEGY_NAMES
    from stream.lab.strategies import STRATEGIES

    assert tuple(STRATEGIES) == STRATEGY_NAMES
    result = CliRunner().invoke(
        main, ["backtest", "--scenario", "abrupt", "--strategies", "full,nope", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "choose from full,sampled,warm,online,hybrid" in result.output


def test_cli_wants_exactly_one_source(tmp_path):
    result = CliRunner().invoke(main, ["backtest", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "exactly one of" in result.output


def _drifting_rows(days: int = 20, per_day: int = 150) -> LabRows:
    """Sessions whose purchase follows the first feature, then its opposite from half-way: a concept drift."""
    rng = np.random.default_rng(0)
    n = days * per_day
    X = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
    decided = np.sort(start + rng.integers(0, days * 86_400_000, size=n)).astype(np.int64)
    flipped = decided >= start + days // 2 * 86_400_000
    logit = np.where(flipped, -3.0, 3.0) * X[:, 0]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return LabRows(
        session_ids=tuple(f"s{i}" for i in range(n)), X=X, y=y, decision_ms=decided,
        closed_ms=decided + 3_600_000, events=n, unlabelled=0, digest="synthetic",
    )  # fmt: skip


def test_a_drift_alarm_brings_the_next_retrain_forward():
    rows = _drifting_rows()
    # synthetic rows: no history features to warm up, so the watch watches from the first session
    monthly = LabConfig(seed=1, strategies=("full",), retrain_every=30, probe_rate=0.0, drift_warmup_days=0.0)
    on_drift = replace(monthly, retrain_on_drift=True)
    plain, triggered = run_backtest(rows, monthly), run_backtest(rows, on_drift)
    alarm_days = {a["day"] for a in triggered["drift_alarms"]}
    assert alarm_days and min(alarm_days) >= "2026-01-15", "the watch fires after the flip, not before"
    assert plain["drift_alarms"] == triggered["drift_alarms"]
    trained = {d["day"] for d in triggered["strategies"]["full"]["daily"] if d["trees"] is not None}
    assert trained == {"2026-01-05"} | alarm_days
    assert [d["day"] for d in plain["strategies"]["full"]["daily"] if d["trees"] is not None] == ["2026-01-05"]
    later = max(alarm_days)
    after = [d["logloss"] for d in triggered["strategies"]["full"]["daily"] if d["day"] > later and d["logloss"]]
    stale = [d["logloss"] for d in plain["strategies"]["full"]["daily"] if d["day"] > later and d["logloss"]]
    assert len(after) == len(stale) >= 3
    assert np.mean(after) < np.mean(stale), "retrained on the new concept, it forecasts better than the stale one"


def test_the_drift_watch_is_silent_while_the_history_features_warm_up():
    rows = _drifting_rows()
    watched = LabConfig(seed=1, strategies=("full",), retrain_every=30, probe_rate=0.0, retrain_on_drift=True)
    assert watched.drift_warmup_days == 28.0  # the worker's processing.drift_warmup_days
    early = replace(watched, drift_warmup_days=0.0)
    assert run_backtest(rows, early)["drift_alarms"], "the flip is seen without a warm-up"
    quiet = run_backtest(rows, watched)  # the whole stream is shorter than the warm-up
    assert quiet["drift_alarms"] == [] and quiet["config"]["drift_warmup_days"] == 28.0
    assert [d["day"] for d in quiet["strategies"]["full"]["daily"] if d["trees"] is not None] == ["2026-01-05"]


def test_log_loss_gaps_are_measured_from_the_days_best_on_days_all_forecast():
    from stream.lab.report import logloss_gaps

    result = {
        "strategies": {
            "a": {"daily": [{"day": "2026-01-01", "logloss": 0.5}, {"day": "2026-01-02", "logloss": 0.7}]},
            "b": {"daily": [{"day": "2026-01-01", "logloss": None}, {"day": "2026-01-02", "logloss": 0.6}]},
        }
    }
    gaps = logloss_gaps(result)
    assert gaps["a"] == ([date(2026, 1, 2)], [pytest.approx(0.1)])
    assert gaps["b"] == ([date(2026, 1, 2)], [0.0])


def test_the_expected_behaviours_are_checked_against_the_numbers_either_way():
    from stream.lab.backtest import expectations

    def forgetting(**by):
        return {n: {"forgetting": v} for n, v in by.items()}

    holds = expectations([], forgetting(warm=0.3, online=0.02, sampled=0.01, hybrid=0.005))
    assert holds == [
        "Expected: warm and online forget more than sampled and hybrid. Observed: they do "
        "(warm +0.3000, online +0.0200, sampled +0.0100, hybrid +0.0050)."
    ]
    assert "Observed: not on this data" in expectations([], forgetting(warm=0.3, online=0.001, sampled=0.01))[0]
    lagging = {"label": "the shift", "from": "d1", "to": "d7"}
    lag = {
        "vs_online": {"mean": 0.01, "lo95": 0.002, "hi95": 0.018},
        "vs_hybrid": {"mean": 0.004, "lo95": -0.001, "hi95": 0.009},
    }
    lines = expectations([lagging | {"lag_of_full": lag}], None)
    assert lines[0].endswith("full − online +0.0100 (95% CI +0.0020 to +0.0180), a lag.")
    assert lines[1].endswith("no lag distinguishable from noise.")


def test_the_window_after_a_change_measures_the_lag_of_full_on_paired_days():
    _, _, result = lab()
    after = next(p for p in result["periods"] if p["when"] == "from")
    days = {after["from"], after["to"]}
    full = {d["day"]: d["logloss"] for d in result["strategies"]["full"]["daily"]}
    online = {d["day"]: d["logloss"] for d in result["strategies"]["online"]["daily"]}
    assert after["lag_of_full"]["vs_online"]["mean"] == pytest.approx(
        np.mean([full[d] - online[d] for d in sorted(days)]), abs=1e-6
    )
    assert "Expected: full lags hybrid after the shift." in result["recommendation"]
