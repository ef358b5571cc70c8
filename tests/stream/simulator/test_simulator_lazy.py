"""The simulation is lazy: a year of 100,000 shoppers starts at once and holds only what is due."""

from __future__ import annotations

import time
import tracemalloc

from stream.simulator import Simulation


def test_a_big_shop_streams_without_pre_generating() -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    sim = Simulation(scenario="seasonal", days=365, users=100_000, seed=1)
    events = [e for _ in range(10_000) if (e := sim.next_event()) is not None]
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(events) == 10_000
    assert elapsed < 10.0  # about 0.5 s on a laptop; pre-generating a year would take hours
    assert peak < 200 * 2**20  # traits and one heap entry per shopper, not a year of events
    stats = sim.stats()
    assert stats["active_sessions"] < 2_000
    assert events[-1]["ts"] - events[0]["ts"] < 2 * 86_400_000  # the first day or so, not the year


def test_what_is_held_does_not_grow_with_the_horizon() -> None:
    # one entry per shopper still due before the horizon, plus one per session in progress
    for days in (7, 3650):
        sim = Simulation(days=days, users=5_000, seed=2)
        for _ in range(30_000):
            sim.next_event()
        assert len(sim._heap) <= sim.users + sim.stats()["active_sessions"]
