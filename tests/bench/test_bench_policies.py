"""The policies bench with the nightly job in the loop: the archive fills, the retrain runs at each simulated
midnight, and decisions after a promotion are scored with the snapshot (its terms are in the policy's context)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.policies import NightlyJob, closed_loop, shop_settings
from stream.app.build import build_processor
from stream.app.replay import decider
from stream.core.records import Output, OutputKind
from stream.simulator import Simulation, closed_loop_run


def test_the_nightly_job_swaps_its_snapshots_into_the_closed_loop(tmp_path: Path) -> None:
    settings = shop_settings(4, "linear_thompson", archive=tmp_path / "archive")
    core = build_processor(settings)
    sim = Simulation("stationary", days=3, users=2000, seed=4, closed_loop=True)
    job = NightlyJob(core, settings, tmp_path, sim.start_ms, sim.end_ms, seed=4)
    decisions: list[dict[str, Any]] = []

    def archive_and_keep(outputs: Sequence[Output]) -> None:
        job.after(outputs)
        decisions.extend(out.body for out in outputs if out.kind is OutputKind.DECISION)

    decide = decider(core, before=job.before, after=archive_and_keep)
    closed_loop_run(sim, decide)
    assert job.nights == 2 and job.promoted >= 1
    first_day = [d for d in decisions if d["ts_ms"] < sim.start_ms + 86_400_000]
    last_day = [d for d in decisions if d["ts_ms"] >= sim.start_ms + 2 * 86_400_000]
    assert first_day and last_day
    assert {d["model_versions"]["snapshot"] for d in first_day} == {None}
    served = [d for d in last_day if d["model_versions"]["snapshot"] is not None]
    assert len(served) == len(last_day)
    assert any(d["features"].get("buy_snapshot:none") or d["scores"].get("intent_snapshot") for d in served)
    assert (tmp_path / "registry" / "CURRENT").is_file()


def test_closed_loop_reports_the_nightly_job_and_cleans_up() -> None:
    r = closed_loop("stationary", 2, 1500, 5, "linear_thompson", nightly=True)
    assert r["nightly"]["nights"] == 1 and r["decisions"] > 0
    assert "nightly" not in closed_loop("stationary", 1, 300, 5, "uniform")


def test_the_fleet_closed_loop_deals_shoppers_to_workers_that_swap_lessons() -> None:
    shared = closed_loop("stationary", 2, 1500, 5, "linear_thompson", workers=2, share_s=1.0)
    apart = closed_loop("stationary", 2, 1500, 5, "linear_thompson", workers=2, share_s=None)
    assert shared["workers"] == apart["workers"] == 2
    assert shared["lessons"] > 0 and apart["lessons"] == 0
    assert shared["decisions"] > 0 and apart["decisions"] > 0
    assert shared["chosen_profit"] != apart["chosen_profit"]  # what was learned from the other worker changed choices


def test_the_policies_bench_prints_one_worker_against_two_sharing_and_two_apart(tmp_path: Path, capsys) -> None:
    from bench.policies import main

    result = main(
        ["--scenarios", "stationary", "--days", "1", "--users", "600", "--policies", "linear_thompson",
         "--jobs", "2", "--out", str(tmp_path / "policies.json")]
    )  # fmt: skip
    fleet = result["fleet"]["stationary"]
    assert fleet["workers"] == 2 and fleet["lessons"] > 0
    assert fleet["sharing_over_one"] == round(fleet["sharing_profit"] / fleet["one_worker_profit"], 4)
    assert "one brain (linear_thompson, 2 workers" in capsys.readouterr().out


def test_with_the_nightly_job_each_policy_is_paired_by_day_with_its_core_alone(tmp_path: Path, capsys) -> None:
    from bench.policies import main

    result = main(
        ["--scenarios", "stationary", "--days", "3", "--users", "1500", "--policies",
         "linear_thompson,linear_thompson:conservative=false", "--nightly", "--fleet", "0", "--jobs", "2",
         "--out", str(tmp_path / "policies.json")]
    )  # fmt: skip
    runs = result["closed_loop"]["stationary"]
    assert [r["policy"] + (" + nightly" if "nightly" in r else "") for r in runs] == [
        "linear_thompson",
        "linear_thompson:conservative=false",
        "linear_thompson + nightly",
        "linear_thompson:conservative=false + nightly",
        f"fixed:{runs[0]['best_fixed_offer']}",
    ]
    assert runs[2]["nightly"]["promoted"] >= 1
    for r in runs:
        i = r["vs_best_fixed_interval"]
        assert i["ratio"] == r["vs_best_fixed"] and i["lo95"] <= i["ratio"] <= i["hi95"]
        assert sum(d["chosen_profit"] for d in r["daily"]) == pytest.approx(r["chosen_profit"])
    paired = {(row["a"], row["b"]): row for row in result["paired"]["stationary"]}
    whole = paired["linear_thompson + nightly", "linear_thompson"]
    assert whole["ratio"] == round(runs[2]["chosen_profit"] / runs[0]["chosen_profit"], 4)
    assert whole["lo95"] <= whole["ratio"] <= whole["hi95"]
    assert ("linear_thompson:conservative=false", "linear_thompson") in paired
    assert "linear_thompson + nightly / linear_thompson: " in capsys.readouterr().out
