"""The loop every run shares, replay and production alike: read a batch, process, write, flush, commit.

Commit order: the outputs of a batch, with the changes it made to its partitions' states
(:meth:`~stream.engine.processor.Processor.changelog`), are written and flushed (acknowledged, archive fsynced)
before the batch's input offsets are committed, so nothing committed lacks its effects. With Kafka transactions
(:mod:`stream.kafka.transactions`) that commit also makes the outputs visible, atomically with the offsets
(exactly-once); without, a crash between flush and commit repeats the batch (at-least-once, recognisable
downstream: decision ids are deterministic).

Reading the batch and writing it (serialise, send, flush, commit) are timed into the processor's stage clock
(:mod:`stream.engine.stage_clock`), beside the core's own stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from stream.core.records import Output, SourceRecord
from stream.engine.processor import Processor


class Source(Protocol):
    """Where records come from (a Kafka consumer, recorded files, a list): batches in order, then None."""

    def next_batch(self, max_records: int) -> list[SourceRecord] | None: ...
    def commit(self, batch: Sequence[SourceRecord]) -> None: ...
    def close(self) -> None: ...


class Sink(Protocol):
    """Where outputs go: ``write`` queues, ``flush`` returns once everything written is durable (for Kafka:
    acknowledged by the broker), ``close``."""

    def write(self, outputs: Sequence[Output]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class PipelineStats:
    records: int = 0
    outputs: int = 0
    batches: int = 0
    seconds: float = 0.0


def run_pipeline(
    source: Source,
    processor: Processor,
    sink: Sink,
    batch_size: int = 500,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[PipelineStats], None] | None = None,
    before_batch: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    more_outputs: Callable[[bool], list[Output]] | None = None,
) -> PipelineStats:
    """Run until the source is exhausted or ``should_stop()``; the last batch is always committed.
    ``more_outputs(last)`` adds to each batch's outputs (the fleet's lessons; ``last``: ``should_stop()`` is
    already true, so this batch is the last)."""
    stats = PipelineStats()
    stages = processor.clock
    started = clock()
    while not should_stop():
        t = stages.now()
        batch = source.next_batch(batch_size)
        stages.lap("read", t)
        if batch is None:
            break
        if batch:
            if before_batch is not None:
                before_batch()  # e.g. swap to a newly promoted snapshot, between batches only
            outputs = processor.process_batch(batch)
            outputs += processor.changelog()  # the state it changed, in the same commit (when kept)
            if more_outputs is not None:
                outputs += more_outputs(should_stop())
            t = stages.now()
            sink.write(outputs)
            sink.flush()
            source.commit(batch)
            stages.lap("write", t)
            stats.records += len(batch)
            stats.outputs += len(outputs)
            stats.batches += 1
        if on_batch is not None:
            on_batch(stats)
    stats.seconds = clock() - started
    return stats
