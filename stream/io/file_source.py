"""Sources feed the processing core: recorded files here, Kafka in :mod:`stream.kafka.source`.

The source protocol (after bytewax): ``next_batch(max_records)`` returns up to that many records, ``[]`` when
nothing is ready yet, or ``None`` once the source is exhausted; ``commit(batch)`` acknowledges a batch whose
outputs are durable; ``close()``.

A file is either plain JSON Lines (one event per line; the topic is the file name, the partition 0 and the
offset the line number) or a recording made by ``offerstream record``: a header line
``{"offerstream_recording": 1, ...}`` followed by one line per message with its partition, offset, broker
timestamp and exact bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from stream.core.jsonl import iter_lines
from stream.core.records import SourceRecord

RECORDING_MARK = "offerstream_recording"


def _recording_header(line: bytes) -> dict | None:
    try:
        head = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return head if isinstance(head, dict) and RECORDING_MARK in head else None


def _bytes_field(entry: dict, name: str) -> bytes | None:
    if entry.get(f"{name}_b64") is not None:
        return base64.b64decode(entry[f"{name}_b64"])
    text = entry.get(name)
    return None if text is None else str(text).encode()


def read_file(path: str | Path) -> Iterator[SourceRecord]:
    """Every record of one file, plain JSONL or recording."""
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        return
    header = _recording_header(first)
    if header is not None:
        topic = str(header.get("topic", Path(path).name))
        for line in lines:
            entry = orjson.loads(line)
            yield SourceRecord(
                value=_bytes_field(entry, "value") or b"",
                topic=topic,
                partition=int(entry["partition"]),
                offset=int(entry["offset"]),
                key=_bytes_field(entry, "key"),
                timestamp_ms=entry.get("timestamp_ms"),
            )
        return
    name = Path(path).name
    yield SourceRecord(value=first, topic=name, partition=0, offset=1)
    for number, line in enumerate(lines, start=2):
        yield SourceRecord(value=line, topic=name, partition=0, offset=number)


class FileSource:
    """Recorded files, one after the other, in order."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = list(paths)
        self._records = (r for p in self.paths for r in read_file(p))

    def next_batch(self, max_records: int) -> list[SourceRecord] | None:
        batch: list[SourceRecord] = []
        for record in self._records:
            batch.append(record)
            if len(batch) >= max_records:
                break
        return batch or None

    def commit(self, batch: Sequence[SourceRecord]) -> None:
        return None

    def close(self) -> None:
        return None


class ListSource:
    """Records held in memory (tests, the in-process closed loop)."""

    def __init__(self, records: Sequence[SourceRecord]) -> None:
        self._records = list(records)
        self._next = 0
        self.committed: list[SourceRecord] = []

    def next_batch(self, max_records: int) -> list[SourceRecord] | None:
        if self._next >= len(self._records):
            return None
        batch = self._records[self._next : self._next + max_records]
        self._next += len(batch)
        return batch

    def commit(self, batch: Sequence[SourceRecord]) -> None:
        self.committed.extend(batch)

    def close(self) -> None:
        return None
