"""The worker's collector settings: young collections rarer, and what survives a settle is frozen, so a later
full collection does not scan it."""

from __future__ import annotations

import gc
import weakref

from stream.app import heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_collects_cycles_then_freezes_the_survivors():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        heap.tune()
        assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD
        kept = [{"user": [i]} for i in range(1000)]  # tracked: they hold a list
        cycle = weakref.ref(_Cycle())  # garbage only the collector can reclaim
        assert cycle() is not None
        heap.settle()
        assert gc.get_freeze_count() >= frozen + len(kept)
        assert cycle() is None  # collected before the freeze, not frozen
        assert kept[999] == {"user": [999]}
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
