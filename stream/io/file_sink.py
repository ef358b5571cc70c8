"""Sinks take the core's outputs: files and lists here, Kafka in :mod:`stream.kafka.sink`.

Each implements the sink protocol of :class:`stream.engine.pipeline.Sink`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from models.history.archive import ArchiveWriter
from stream.core.jsonl import open_binary
from stream.core.records import Output, OutputKind
from stream.engine.pipeline import Sink


class FileSink:
    """One JSON line per output, into a file per kind (gzip when the name ends in ``.gz``).

    A kind without a path is counted but not written (for example rewards when ``--rewards`` is not given).
    """

    def __init__(self, paths: dict[OutputKind, str | Path | None]) -> None:
        self._files: dict[OutputKind, IO[bytes]] = {
            kind: open_binary(path, "wb") for kind, path in paths.items() if path is not None
        }
        self.counts: dict[OutputKind, int] = dict.fromkeys(OutputKind, 0)

    def write(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            self.counts[out.kind] += 1
            fh = self._files.get(out.kind)
            if fh is not None:
                fh.write(out.value() + b"\n")

    def flush(self) -> None:
        for fh in self._files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


class ListSink:
    """Keeps outputs in memory, by kind."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def write(self, outputs: Sequence[Output]) -> None:
        self.outputs.extend(outputs)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def of(self, kind: OutputKind) -> list[Output]:
        return [o for o in self.outputs if o.kind is kind]


class ArchiveSink:
    """Valid events and decisions into the day-partitioned archive (:mod:`models.history.archive`); the rest is ignored.

    ``flush()`` returns once the archive's files are fsynced, so a pipeline that commits after flushing never
    commits an offset whose event is not in the archive.
    """

    def __init__(self, writer: ArchiveWriter) -> None:
        self.writer = writer
        self.counts: dict[OutputKind, int] = dict.fromkeys(OutputKind, 0)

    def write(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            if out.kind is OutputKind.EVENT:
                self.writer.append("events", out.body, out.body["ts"])
            elif out.kind is OutputKind.DECISION:
                self.writer.append("decisions", out.body, out.body["ts_ms"])
            else:
                continue
            self.counts[out.kind] += 1

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TeeSink:
    """Every output to several sinks; flushed and closed in order (the first one first)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def write(self, outputs: Sequence[Output]) -> None:
        for sink in self.sinks:
            sink.write(outputs)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
