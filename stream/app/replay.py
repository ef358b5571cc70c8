"""Replay: recorded files through the same processing core as production, with an event-time clock.

Time in a replay is the events' own time (the watermark), never the wall clock, so the same files and seed give
byte-identical decisions, whatever the batch size.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from models.history.archive import ArchiveWriter
from stream.app.build import build_processor, load_promoted, writer_id
from stream.app.settings import Settings
from stream.core.records import Output, OutputKind, SourceRecord
from stream.engine.pipeline import PipelineStats, Sink, run_pipeline
from stream.engine.processor import Processor
from stream.io.file_sink import ArchiveSink, FileSink, TeeSink
from stream.io.file_source import FileSource


def decider(
    processor: Processor,
    topic: str = "simulator",
    before: Callable[[dict[str, Any]], None] | None = None,
    after: Callable[[Sequence[Output]], None] | None = None,
) -> Callable[[dict[str, Any]], tuple[str, str] | None]:
    """The core as the in-process closed loop's decision function: event in, (offer, decision_id) or None.

    ``before`` sees each event before the core does, ``after`` every output of it (e.g. to archive them)."""
    offset = itertools.count()
    outputs: list[Output] = []

    def decide(event: dict[str, Any]) -> tuple[str, str] | None:
        if before is not None:
            before(event)
        outputs[:] = processor.process(SourceRecord(orjson.dumps(event), topic, 0, next(offset)))
        if after is not None:
            after(outputs)
        for out in outputs:
            if out.kind is OutputKind.DECISION:
                return out.body["offer"], out.body["decision_id"]
        return None

    return decide


def replay_files(
    paths: Sequence[str | Path],
    settings: Settings,
    decisions: str | Path,
    dead_letters: str | Path,
    rewards: str | Path | None = None,
    batch_size: int = 500,
) -> tuple[Processor, PipelineStats, dict[OutputKind, int]]:
    """Replay ``paths`` in order; returns the core (for its counters and state), timing and output counts."""
    processor = build_processor(settings, load_promoted(settings))
    files = FileSink({OutputKind.DECISION: decisions, OutputKind.DEAD_LETTER: dead_letters, OutputKind.REWARD: rewards})
    sink: Sink = files
    if settings.models.archive is not None:
        sink = TeeSink(files, ArchiveSink(ArchiveWriter(settings.models.archive, writer_id(settings, "replay"))))
    try:
        stats = run_pipeline(FileSource(paths), processor, sink, batch_size=batch_size)
    finally:
        sink.close()
    return processor, stats, files.counts
