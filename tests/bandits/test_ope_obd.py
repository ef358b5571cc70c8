"""Real data: the Open Bandit Dataset sample (installed by `make setup`), checked against sums taken here.

The reference figures are computed in this file straight from the CSV columns with the csv module, not with the
code under test. A missing dataset fails (it never skips): CI runs `make setup`, which installs it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from bandits.errors import OpeError
from bandits.ope.evaluate import evaluate, target_factory
from bandits.ope.logged_rounds import read_obd
from bandits.ope.obd import obd_csv
from stream.app.settings import load_settings
from stream.cli import main


def obd_file(policy: str, campaign: str = "all") -> Path:
    try:
        return obd_csv(policy, campaign)
    except OpeError as exc:
        pytest.fail(f"{exc} — the OPE tests need the Open Bandit Dataset sample: run `make setup`")


def raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def reference_ipw_snipw(path: Path, target_prob) -> tuple[float, float]:
    """IPW and SNIPW from the raw columns: target_prob(item_id) / propensity_score as the weight of a click."""
    rows = raw_rows(path)
    num = den = 0.0
    for row in rows:
        w = target_prob(row["item_id"]) / float(row["propensity_score"])
        num += w * int(row["click"])
        den += w
    return num / len(rows), num / den


@pytest.fixture(scope="module")
def bts() -> Path:
    return obd_file("bts")


def test_uniform_target_matches_the_raw_columns(bts):
    n_items = len(raw_rows(bts.with_name("item_context.csv")))
    assert n_items == 80
    ipw, snipw = reference_ipw_snipw(bts, lambda item: 1.0 / n_items)
    out = evaluate(read_obd(bts), "uniform", estimators=("ipw", "snipw"), resamples=0)
    assert out["estimates"]["ipw"]["value"] == pytest.approx(ipw, abs=1e-9)
    assert out["estimates"]["snipw"]["value"] == pytest.approx(snipw, abs=1e-9)
    assert out["n"] == 10_000


def test_fixed_item_target_matches_the_raw_columns(bts):
    item = raw_rows(bts)[0]["item_id"]
    ipw, snipw = reference_ipw_snipw(bts, lambda i: 1.0 if i == item else 0.0)
    out = evaluate(read_obd(bts), f"offer:{item}", estimators=("ipw", "snipw"), resamples=0)
    assert out["estimates"]["ipw"]["value"] == pytest.approx(ipw, abs=1e-9)
    assert out["estimates"]["snipw"]["value"] == pytest.approx(snipw, abs=1e-9)


def test_rounds_read_as_the_dataset_says(bts):
    rows = raw_rows(bts)
    rounds = read_obd(bts)
    assert rounds.actions == [r["item_id"] for r in rows]
    assert rounds.rewards.sum() == sum(int(r["click"]) for r in rows)
    assert len(rounds.eligible[0]) == 80 and set(rounds.actions) <= set(rounds.eligible[0])
    assert rounds.contexts[0][f"user_feature_0.{rows[0]['user_feature_0']}"] == 1.0
    assert rounds.contexts[0][f"position.{rows[0]['position']}"] == 1.0


def test_replay_on_the_random_logs_matches_what_uniform_logging_implies():
    random_log = obd_file("random")
    rows = raw_rows(random_log)
    assert {r["propensity_score"] for r in rows} == {"0.0125"}
    out = evaluate(read_obd(random_log), "uniform", estimators=("replay",), seed=1, resamples=200)
    # a uniform target matches a uniform logger in 1/80 of the rounds: 125 expected, sd ≈ 11
    assert 80 <= out["replay_matches"] <= 170
    assert not out["notes"]


def test_cli_json_contract(bts):
    result = CliRunner().invoke(
        main,
        ["ope", "--format", "obd", "--log", str(bts), "--target", "uniform", "--bootstrap", "300", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert set(out) >= {"estimates", "on_policy_value", "n"}
    assert set(out["estimates"]) == {"ipw", "snipw", "dr", "replay"}
    assert out["n"] == 10_000
    clicks = sum(int(r["click"]) for r in raw_rows(bts))
    assert out["on_policy_value"] == pytest.approx(clicks / 10_000, abs=1e-12)
    for name, e in out["estimates"].items():
        lo, hi = e["ci"]
        assert lo <= e["value"] <= hi, (name, e)


def test_cli_linear_policy_gets_the_one_hot_context(bts, tmp_path):
    # The first 300 rounds, beside a copy of the campaign's items (the default --item-context).
    lines = bts.read_text().splitlines(keepends=True)
    (tmp_path / "head.csv").write_text("".join(lines[:301]))
    (tmp_path / "item_context.csv").write_text(bts.with_name("item_context.csv").read_text())
    args = ["ope", "--format", "obd", "--log", str(tmp_path / "head.csv"), "--target", "linear_thompson"]
    result = CliRunner().invoke(main, [*args, "--estimators", "snipw,replay", "--bootstrap", "0", "--json"])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert out["n"] == 300 and 0.0 <= out["estimates"]["snipw"]["value"] <= 1.0
    rounds = read_obd(tmp_path / "head.csv")
    policy = target_factory("linear_thompson", load_settings(env={}).policy, rounds.feature_names())()
    assert getattr(policy, "context", None) == rounds.feature_names()


def test_missing_dataset_says_run_make_setup(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(OpeError, match="make setup"):
        obd_csv("bts")
