"""simulate_to_file: gzip JSONL that round-trips, and truth lines for the decision points."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from stream.core.jsonl import iter_lines
from stream.simulator import Simulation, simulate_to_file


def test_gzip_events_and_truth_round_trip(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl.gz", tmp_path / "truth.jsonl"
    stats = simulate_to_file("stationary", 2, 400, 13, out, truth=truth)
    with gzip.open(out, "rb") as fh:
        assert fh.read(1) == b"{"
    events = [orjson.loads(line) for line in iter_lines(out)]
    sim = Simulation(days=2, users=400, seed=13)
    expected = []
    while (ev := sim.next_event()) is not None:
        expected.append(ev)
    assert events == expected
    assert stats["events"] == len(events)

    records = [orjson.loads(line) for line in iter_lines(truth)]
    assert len(records) == stats["truth_records"] == stats["decision_points"] > 0
    ids = {e["event_id"]: e for e in events}
    for rec in records:
        assert ids[rec["event_id"]]["type"] in {"add_to_cart", "checkout_start"}
        assert rec["best_offer"] in rec["expected_profit"]
        assert rec["user_id"] == ids[rec["event_id"]]["user_id"]


def test_same_arguments_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    simulate_to_file("gradual", 1, 200, 5, a, start="2026-02-01T00:00:00Z", margin=0.25)
    simulate_to_file("gradual", 1, 200, 5, b, start="2026-02-01T00:00:00Z", margin=0.25)
    assert a.read_bytes() == b.read_bytes()
    plain = tmp_path / "plain.jsonl"
    simulate_to_file("gradual", 1, 200, 5, plain, start="2026-02-01T00:00:00Z", margin=0.25)
    assert plain.read_bytes() == gzip.decompress(a.read_bytes())
