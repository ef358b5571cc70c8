"""The sharing bench: each arm's learners at the end of chosen days, frozen and valued on one held-out day."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.sharing import frozen, held_out_value, main, train


def test_a_frozen_core_decides_with_what_it_was_taught_and_learns_nothing_more() -> None:
    run = train("one", "stationary", 2, 600, 5, "linear_thompson", workers=2, share_s=1.0, at=[2])
    (lesson,) = run["lessons"][2.0]
    assert lesson is not None and "policy" in lesson
    core = frozen(lesson, 5, "linear_thompson")
    before = {"policy": core.policy.version} | {n: x.version for n, x in core.learners.items()}
    first = held_out_value(lesson, 5, "linear_thompson", "stationary", 600, 1000)
    assert first["decisions"] > 0 and 0 < first["chosen_profit"] <= first["oracle_profit"]
    assert held_out_value(lesson, 5, "linear_thompson", "stationary", 600, 1000) == first  # nothing learned
    knows_nothing = held_out_value(None, 5, "linear_thompson", "stationary", 600, 1000)
    assert knows_nothing["chosen_profit"] != first["chosen_profit"]  # what it was taught changes its choices
    assert {"policy": core.policy.version} | {n: x.version for n, x in core.learners.items()} == before


def test_the_arms_take_their_lessons_and_the_bench_prints_the_curve(tmp_path: Path, capsys) -> None:
    sharing = train("sharing", "stationary", 2, 600, 5, "linear_thompson", workers=2, share_s=1.0, at=[1, 2])
    apart = train("apart", "stationary", 2, 600, 5, "linear_thompson", workers=2, share_s=1.0, at=[1, 2])
    assert sorted(sharing["lessons"]) == [1.0, 2.0] and len(sharing["lessons"][1.0]) == 2
    assert sharing["lessons_swapped"] > 0 and apart["lessons_swapped"] == 0
    out = tmp_path / "sharing.json"
    result = main(
        ["--days", "2", "--users", "600", "--seeds", "5", "--at", "1,2", "--held-out-users", "600",
         "--jobs", "2", "--out", str(out)]
    )  # fmt: skip
    assert [row["day"] for row in result["curve"]] == [1.0, 2.0]
    row = result["curve"][-1]
    assert row["sharing_minus_apart_mean"] == round(row["sharing"]["5"] - row["apart"]["5"], 4)
    assert orjson.loads(out.read_bytes())["curve"] == result["curve"]
    assert "sharing − apart per seed" in capsys.readouterr().out
