"""Where a worker's time goes: wall-clock nanoseconds per stage of the pipeline, always on.

The pipeline and the processing core add each stage's elapsed time to one :class:`StageClock` as they go
(``t = clock.lap("parse", t)``); reading the clock twice costs well under a microsecond, so it stays on in
production, where the worker exports the totals as ``offerstream_stage_seconds_total{stage}``, and ``make
bench`` divides them by the events replayed. Stages (:data:`STAGES`):

* ``read``: the source's batch (file lines or a Kafka poll);
* ``parse``: size check, JSON and schema, timestamp checks, duplicate check;
* ``state``: per-user and per-session state, idle sessions closed, behaviour features at decision points;
* ``snapshot``: the nightly XGBoost snapshot scoring the batch's decision points (one call per batch);
* ``learners``: the River learners, scoring at decision points and learning closed sessions and rewards;
* ``policy``: eligibility, the bandit's choice and its learning from rewards;
* ``decide``: the rest of stage 3: attribution windows, the reward ledger, the decision's record;
* ``write``: serialising the outputs and handing them to the sink, its flush and the source's commit.

Times are wall clock, not CPU, and never enter the core's counters or snapshots (those must be identical
across replays).

>>> ticks = iter([0, 1_000, 4_000])
>>> clock = StageClock(now=lambda: next(ticks))
>>> t = clock.now()
>>> t = clock.lap("parse", t); t = clock.lap("state", t)
>>> clock.ns["parse"], clock.ns["state"]
(1000, 3000)
"""

from __future__ import annotations

import time
from collections.abc import Callable

STAGES = ("read", "parse", "state", "snapshot", "learners", "policy", "decide", "write")


class StageClock:
    """Accumulated nanoseconds per stage; ``now`` is injectable (tests)."""

    __slots__ = ("now", "ns")

    def __init__(self, now: Callable[[], int] = time.perf_counter_ns) -> None:
        self.now = now
        self.ns: dict[str, int] = dict.fromkeys(STAGES, 0)

    def lap(self, stage: str, since: int) -> int:
        """Add the time since ``since`` to ``stage``; returns now (the start of the next stage)."""
        t = self.now()
        self.ns[stage] += t - since
        return t

    def total_ns(self) -> int:
        return sum(self.ns.values())

    def reset(self) -> None:
        self.ns = dict.fromkeys(STAGES, 0)
