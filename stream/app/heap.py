"""The worker and CPython's cyclic garbage collector: long-lived state is frozen, so collections stay short.

A worker holds every tracked shopper's state, the online learners and the policy's posterior: hundreds of
thousands of objects that live for hours. CPython's collector (thresholds 700, 10, 10) scans all of them in
each full collection, and the worker's steady allocation triggers one every ~15 s: measured at 1,000 events/s
offered (the latency bench's setup, 57 s runs), ~600 collections a run, four of them full ones of 112-193 ms, during
which no record is processed; they were the p99 of the decisions' latency.

So the worker :func:`tune` s the collector once (young collections 14× rarer: a threshold of 10,000 net
allocations instead of 700), and :func:`settle` s the heap at its start and after each checkpoint: a
collection of what is not frozen yet (only what survived since the last settle: new shoppers' state, a swapped
snapshot), then ``gc.freeze()``, which moves every surviving object to the permanent generation that no
collection scans. Freezing changes nothing else: reference counting frees a frozen object as soon as nothing
refers to it; only one that ends up in a reference cycle is never reclaimed (the core holds none: one dropped
after 20,000 events left no cyclic garbage). Both are process-wide; neither touches results.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 10_000


def tune() -> None:
    """Make young collections rarer (process-wide)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def settle() -> None:
    """Collect what is not frozen, then freeze what survives: later collections skip it."""
    started = time.perf_counter()
    found = gc.collect()
    gc.freeze()
    log.debug(
        "heap settled in %.1f ms: %d unreachable objects collected, %d frozen",
        (time.perf_counter() - started) * 1000,
        found,
        gc.get_freeze_count(),
    )
