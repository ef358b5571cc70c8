"""`offerstream ope --format ours` end to end: simulate, replay with the default policy, evaluate the logs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.core.jsonl import iter_lines


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ope")
    paths = {k: d / f"{k}.jsonl" for k in ("events", "decisions", "rewards", "dead")}
    invoke("simulate", "--days", "2", "--users", "2500", "--seed", "4", "--out", str(paths["events"]))
    invoke(
        "replay", str(paths["events"]), "--decisions", str(paths["decisions"]),
        "--rewards", str(paths["rewards"]), "--dead-letters", str(paths["dead"]),
    )  # fmt: skip
    return paths


def records(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in iter_lines(path)]


def ope_json(logs: dict[str, Path], *extra: str) -> dict:
    args = ["ope", "--format", "ours", "--log", str(logs["decisions"]), "--log", str(logs["rewards"])]
    return orjson.loads(invoke(*args, *extra, "--json"))


def test_json_contract_on_our_logs(logs):
    decisions, rewards = records(logs["decisions"]), records(logs["rewards"])
    assert len(decisions) >= 100, "the simulated logs are too small to say anything"
    out = ope_json(logs, "--target", "uniform", "--bootstrap", "300")
    resolved = {r["decision_id"] for r in rewards}
    assert out["n"] == sum(d["decision_id"] in resolved for d in decisions)
    assert out["unresolved"] == len(decisions) - out["n"]
    assert out["on_policy_value"] == pytest.approx(sum(r["reward"] for r in rewards) / len(rewards), abs=1e-9)
    assert set(out["estimates"]) == {"ipw", "snipw", "dr", "replay"}
    for name, e in out["estimates"].items():
        lo, hi = e["ci"]
        assert lo <= e["value"] <= hi, (name, e)
    # The logger is the learning default policy: its propensities vary, and replay says so.
    assert any("uniformly random" in n for n in out["notes"])


def test_uniform_ipw_by_hand(logs):
    rewards = {r["decision_id"]: r["reward"] for r in records(logs["rewards"])}
    terms = [
        rewards[d["decision_id"]] / len(d.get("eligible") or d["propensities"]) / d["propensity"]
        for d in records(logs["decisions"])
        if d["decision_id"] in rewards
    ]
    out = ope_json(logs, "--target", "uniform", "--estimators", "ipw", "--bootstrap", "0")
    assert out["estimates"]["ipw"]["value"] == pytest.approx(sum(terms) / len(terms), abs=1e-9)


def test_fixed_offer_target_by_hand(logs):
    rewards = {r["decision_id"]: r["reward"] for r in records(logs["rewards"])}
    resolved = [d for d in records(logs["decisions"]) if d["decision_id"] in rewards]
    hits = [rewards[d["decision_id"]] / d["propensity"] for d in resolved if d["offer"] == "none"]
    out = ope_json(logs, "--target", "offer:none", "--estimators", "ipw,replay", "--seed", "2")
    assert out["seed"] == 2 and out["target"] == "offer:none"
    assert out["estimates"]["ipw"]["value"] == pytest.approx(sum(hits) / len(resolved), abs=1e-9)
    assert out["replay_matches"] == len(hits)


def test_same_seed_same_output(logs):
    args = ("--target", "linear_thompson", "--bootstrap", "200", "--seed", "9")
    assert ope_json(logs, *args) == ope_json(logs, *args)


def test_table_output_and_errors(logs):
    text = invoke("ope", "--format", "ours", "--log", str(logs["decisions"]), "--log", str(logs["rewards"]),
                  "--target", "uniform", "--bootstrap", "50")  # fmt: skip
    assert "ipw" in text and "95% interval" in text and "logged" in text
    bad = CliRunner().invoke(main, ["ope", "--format", "ours", "--log", str(logs["decisions"]), "--target", "nobody"])
    assert bad.exit_code != 0 and "offer:NAME" in bad.output
    only_decisions = CliRunner().invoke(
        main, ["ope", "--format", "ours", "--log", str(logs["decisions"]), "--target", "uniform"]
    )
    assert only_decisions.exit_code != 0 and "no resolved decisions" in only_decisions.output
    bad_est = CliRunner().invoke(
        main, ["ope", "--format", "ours", "--log", str(logs["decisions"]), "--target", "uniform", "--estimators", "x"]
    )
    assert bad_est.exit_code != 0 and "ipw,snipw,dr,replay" in bad_est.output
