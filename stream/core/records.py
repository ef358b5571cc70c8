"""What flows through the pipeline: records read from a source, and the outputs written to sinks.

Outputs serialise to JSON with sorted keys (orjson), so the same decisions give the same bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One input message and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp_ms: int | None = None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class OutputKind(StrEnum):
    DECISION = "decision"
    REWARD = "reward"
    DEAD_LETTER = "dead_letter"
    EVENT = "event"  # a valid event, as the contract gives it: only for the archive (when archiving)
    STATE_CHANGE = "state_change"  # a partition state's changelog record: raw bytes for its input partition
    LESSON = "lesson"  # for the model topic: a worker's lesson or the fleet's model (stream.kafka.model_topic)


@dataclass(frozen=True, slots=True)
class Output:
    """One record for a sink: its kind (which topic or file), its key and its JSON body. A state change carries
    its value as ``raw`` bytes (None: a deletion) and the ``partition`` it belongs to instead."""

    kind: OutputKind
    key: bytes | None
    body: dict[str, Any]
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None
    raw: bytes | None = None

    def value(self) -> bytes:
        return orjson.dumps(self.body, option=orjson.OPT_SORT_KEYS)


def iso_ms(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision.

    >>> iso_ms(1767603600123)
    '2026-01-05T09:00:00.123Z'
    """
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dead_letter(record: SourceRecord, reason: str, detail: str) -> Output:
    """A dead letter: the original bytes (base64, exact), where they came from, and why they were refused."""
    body = {
        "reason": reason,
        "detail": detail,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key_b64": base64.b64encode(record.key).decode() if record.key is not None else None,
        "value_b64": base64.b64encode(record.value).decode(),
    }
    headers = (
        ("offerstream.reason", reason.encode()),
        ("offerstream.source", record.where.encode()),
    )
    return Output(OutputKind.DEAD_LETTER, record.key, body, headers)
