"""The drift bench's figures: false alarms per week in and after the warm-up, and the delay to detect a change."""

from __future__ import annotations

import orjson

from bench.drift import main, summarise


def _result(scenario: str, warmup: float, alarms: list[float]) -> dict:
    return {"scenario": scenario, "warmup_days": warmup, "learners": {"l": {"alarms_at_day": alarms}}}


def test_false_alarms_per_week_and_the_detection_delay():
    stationary = summarise(_result("stationary", 14.0, [1.2, 3.0, 20.0]), days=30.0)["l"]
    assert stationary == {
        "false_per_week_in_warmup": 1.0,  # 2 alarms in 14 days
        "false_per_week_after_warmup": round(7 / 16, 2),  # 1 in the 16 days after
        "detection_delay_days": None,
    }
    abrupt = summarise(_result("abrupt", 14.0, [2.0, 14.5, 16.2, 20.0]), days=30.0)["l"]
    assert abrupt["false_per_week_in_warmup"] == 0.5  # the launch is at day 15: alarms before it are false
    assert abrupt["false_per_week_after_warmup"] == 7.0  # one in the single day between warm-up and launch
    assert abrupt["detection_delay_days"] == 1.2
    none = summarise(_result("abrupt", 0.0, []), days=30.0)["l"]
    assert none == {"false_per_week_in_warmup": None, "false_per_week_after_warmup": 0.0, "detection_delay_days": None}


def test_the_bench_runs_and_writes_what_it_printed(tmp_path, capsys):
    out = tmp_path / "drift.json"
    result = main(["--days", "2", "--users", "300", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "stationary, warm-up 28 days" in printed and "abrupt, warm-up 0 days, launch at day 1" in printed
    written = orjson.loads(out.read_bytes())
    assert written["abrupt"]["no_warmup"]["summary"] == result["abrupt"]["no_warmup"]["summary"]
    run = written["stationary"]["warmup"]
    assert run["events"] > 1000 and all(v["watched"] == 0 for v in run["learners"].values())  # 2 days: all warm-up
    assert any(v["watched"] > 0 for v in written["stationary"]["no_warmup"]["learners"].values())
