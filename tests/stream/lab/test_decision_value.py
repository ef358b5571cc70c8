"""Each strategy's price model in its own closed loop: realised profit against the oracle, reproducibly."""

from __future__ import annotations

from html.parser import HTMLParser

import orjson
from click.testing import CliRunner

from stream.app.settings import load_settings
from stream.cli import main
from stream.lab.backtest import LabConfig
from stream.lab.decision_value import EPSILON, run_closed_loop


def test_a_closed_loop_is_reproducible_and_earns_no_more_than_the_oracle():
    processing = load_settings(env={}).processing
    first = run_closed_loop("online", "abrupt", 3, 1200, 5, LabConfig(seed=5), processing)
    second = run_closed_loop("online", "abrupt", 3, 1200, 5, LabConfig(seed=5), processing)

    def decisions(run):  # everything but the measured CPU time
        return [{k: v for k, v in d.items() if k != "train_cpu_s"} for d in run["daily"]]

    assert decisions(first) == decisions(second)
    summary = first["summary"]
    assert summary["decisions"] == sum(d["decisions"] for d in first["daily"]) > 0
    assert 0.0 < summary["profit_fraction"] <= 1.0
    for day in first["daily"]:
        assert day["profit"] <= day["oracle_profit"] + 1e-6
    explored = sum(d["explored"] for d in first["daily"][1:])
    later = sum(d["decisions"] for d in first["daily"][1:])
    assert 0 < explored < 3 * EPSILON * later, "after the first day the model chooses; ε of the time it explores"


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == "closed-loop":
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.rows and self.lasttag == "td":
            self.rows[-1].append(data)


def test_the_cli_reports_each_strategys_closed_loop(tmp_path):
    out = tmp_path / "lab"
    args = ["backtest", "--scenario", "abrupt", "--days", "3", "--users", "1200", "--strategies", "full,online"]
    result = CliRunner().invoke(main, [*args, "--closed-loop", "--seed", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = orjson.loads((out / "results.json").read_bytes())
    loops = data["closed_loop"]
    assert set(loops["strategies"]) == {"full", "online"} and loops["epsilon"] == EPSILON
    assert loops["best"] in loops["strategies"] and loops["recommendation"] in result.output
    table = _Table()
    table.feed((out / "report.html").read_text())
    cells = {row[0]: row for row in table.rows if row}
    for name, run in loops["strategies"].items():
        assert abs(float(cells[name][1]) - run["summary"]["profit_fraction"]) <= 0.5e-4 + 1e-12
    assert (out / "plots" / "closed_loop.svg").is_file()
    for name, run in loops["strategies"].items():  # the contract's daily "profit" is the closed loop's
        realised = {d["day"]: d["profit"] for d in run["daily"]}
        for day in data["strategies"][name]["daily"]:
            assert day["profit"] == realised[day["day"]]


def test_closed_loop_needs_a_scenario(tmp_path):
    result = CliRunner().invoke(main, ["backtest", "--archive", str(tmp_path), "--closed-loop", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--closed-loop needs --scenario" in result.output
