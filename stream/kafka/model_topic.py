"""The model topic: the fleet's one brain on Kafka (lessons, and the fleet's model, :mod:`stream.core.lessons`).

One partition (one order for the whole fleet), compacted, holding two kinds of record, JSON:

* ``lesson:<worker>`` — what one worker's learners learned since its previous lesson (``seq`` counts that
  worker's lessons from 1). Written in the batch's transaction, with its outputs, state changes and input
  offsets: a lesson is visible exactly when the input that taught it is committed, never twice, never lost.
* ``model`` — the fleet's model as one worker holds it (everything learned, as one lesson to a learner that
  knows nothing) with its ``clock``: the last lesson of each worker folded into it. A worker that starts takes
  the newest model and folds the lessons after its clock.

Compaction keeps the newest record of each key; ``min.compaction.lag.ms`` (an hour) keeps every lesson newer
than that, so the lessons after the newest model (written every ``kafka.model_every_s``, a minute) are always
there to fold.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import TopicPartition

from stream.core.lessons import Lesson
from stream.core.records import Output, OutputKind
from stream.kafka.errors import StateTopicUnreadable
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

MODEL_KEY = b"model"
LESSON_PREFIX = "lesson:"
MODEL_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(3_600_000),  # lessons stay an hour: far longer than between two models
    "segment.ms": str(600_000),
    "max.message.bytes": str(8 * 1024 * 1024),  # a model of a wide context (its precision is d²/2 numbers)
}


@dataclass(slots=True)
class ModelRecord:
    """One record of the model topic: a worker's lesson, or the fleet's model as a worker held it."""

    kind: str  # "lesson" or "model"
    worker: str
    seq: int  # the worker's lesson count (a model: that of the worker that wrote it)
    taken_ms: int  # wall clock when it was taken
    lesson: Lesson
    clock: dict[str, int] = field(default_factory=dict)  # a model: each worker's last lesson folded into it
    offset: int = -1

    def output(self) -> Output:
        key = MODEL_KEY if self.kind == "model" else f"{LESSON_PREFIX}{self.worker}".encode()
        body = {"kind": self.kind, "worker": self.worker, "seq": self.seq, "taken_ms": self.taken_ms}
        if self.kind == "model":
            body["clock"] = self.clock
        return Output(OutputKind.LESSON, key, body | {"lesson": self.lesson})


def parse(value: bytes | None, offset: int) -> ModelRecord | None:
    """A record read back; None for a tombstone or a record that is not one of ours (logged)."""
    if value is None:
        return None
    try:
        body = orjson.loads(value)
        return ModelRecord(
            kind=str(body["kind"]),
            worker=str(body["worker"]),
            seq=int(body["seq"]),
            taken_ms=int(body["taken_ms"]),
            lesson=body["lesson"],
            clock={str(w): int(s) for w, s in body.get("clock", {}).items()},
            offset=offset,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.error("model topic record at offset %d is not a lesson or a model (%r); skipped", offset, exc)
        return None


def ensure_model_topic(
    admin: KafkaAdminClient, settings: KafkaSettings, existing: set[str], timeout_ms: int
) -> list[str]:
    """The model topic (one partition, compacted) when missing; returns its name when it was created."""
    topic = settings.learning_topic
    if topic in existing:
        return []
    with contextlib.suppress(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs=MODEL_TOPIC_CONFIGS)], timeout_ms=timeout_ms)
        log.info("created the model topic %s (1 partition, compacted)", topic)
        return [topic]
    return []


class ModelTopicReader:
    """Reads the model topic from its beginning, committed records only, never blocking for long."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = settings.learning_topic
        self.tp = TopicPartition(self.topic, 0)
        self.consumer = KafkaConsumer(
            **settings.client_options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=int(MODEL_TOPIC_CONFIGS["max.message.bytes"]),
            fetch_max_bytes=max(settings.fetch_max_bytes, int(MODEL_TOPIC_CONFIGS["max.message.bytes"])),
        )
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)

    def poll(self, timeout_ms: int = 0) -> list[ModelRecord]:
        """What has been committed since the last poll, in topic order."""
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=1000)
        out = []
        for message in polled.get(self.tp, ()):
            record = parse(message.value, message.offset)
            if record is not None:
                out.append(record)
        return out

    def read_to_end(self, stall_s: float = 60.0) -> list[ModelRecord]:
        """Everything committed up to now (the end is the last stable offset, read when called), and whatever
        the last poll brought beyond it: records the fleet committed meanwhile are returned, never read past
        (the next :meth:`poll` starts after them)."""
        end = self.consumer.end_offsets([self.tp])[self.tp]
        out: list[ModelRecord] = []
        news = time.monotonic()
        while self.consumer.position(self.tp) < end:
            records = self.poll(timeout_ms=500)
            if records:
                news = time.monotonic()
            out.extend(records)
            if time.monotonic() - news > stall_s:
                raise StateTopicUnreadable(f"{self.topic}: no record for {stall_s:.0f} s before its end {end}")
        return out

    def close(self) -> None:
        self.consumer.close()


@dataclass(slots=True)
class FleetModel:
    """What a starting worker finds on the model topic: the newest model and every lesson still there."""

    model: ModelRecord | None = None
    all_lessons: list[ModelRecord] = field(default_factory=list)

    @classmethod
    def of(cls, records: list[ModelRecord]) -> FleetModel:
        found = cls()
        for r in records:
            if r.kind == "model":
                found.model = r
            else:
                found.all_lessons.append(r)
        return found

    @property
    def lessons(self) -> list[ModelRecord]:
        """The lessons the newest model does not hold, in the topic's order."""
        return self.after(self.model.clock if self.model is not None else {})

    def after(self, clock: Mapping[str, int]) -> list[ModelRecord]:
        """The lessons not yet folded into a learner whose clock is ``clock``."""
        return [r for r in self.all_lessons if r.seq > clock.get(r.worker, 0)]

    def latest(self) -> dict[str, int]:
        """Each worker's last lesson, as far as the topic tells (its lessons, or a model's clock)."""
        out = dict(self.model.clock) if self.model is not None else {}
        for r in self.all_lessons:
            out[r.worker] = max(out.get(r.worker, 0), r.seq)
        return out

    def others_learned_since(self, clock: Mapping[str, int], worker: str) -> bool:
        """Whether a worker other than ``worker`` wrote a lesson that a learner with ``clock`` lacks."""
        return any(seq > clock.get(w, 0) for w, seq in self.latest().items() if w != worker)

    @property
    def empty(self) -> bool:
        return self.model is None and not self.all_lessons
