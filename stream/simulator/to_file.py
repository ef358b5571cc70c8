"""Open-loop runs written to files: the event stream as JSON Lines and, optionally, the oracle's truth.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> stats = simulate_to_file("stationary", 1, 20, 3, os.path.join(d, "events.jsonl.gz"))
>>> stats["events"] > 0
True
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from stream.core.jsonl import dumps_line, open_binary
from stream.simulator.scenarios import Scenario
from stream.simulator.simulation import Simulation


def simulate_to_file(
    scenario: str | Scenario,
    days: float,
    users: int,
    seed: int,
    out: str | Path,
    truth: str | Path | None = None,
    start: datetime | str | int | None = None,
    margin: float = 0.30,
) -> dict[str, Any]:
    """Write every event to ``out`` (gzip when it ends in ``.gz``; ``-`` is stdout) and, when ``truth`` is a
    path, the truth record of every decision-eligible event there; returns the run's ``stats()``."""
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed, start=start, margin=margin)
    truth_lines = 0
    with ExitStack() as stack:
        events_fh = stack.enter_context(open_binary(out, "wb"))
        truth_fh = stack.enter_context(open_binary(truth, "wb")) if truth is not None else None
        while (ev := sim.next_event()) is not None:
            events_fh.write(dumps_line(ev))
            if truth_fh is not None and (rec := sim.truth_record(ev["event_id"])) is not None:
                truth_fh.write(dumps_line(rec))
                truth_lines += 1
    stats = sim.stats()
    stats["truth_records"] = truth_lines
    return stats
