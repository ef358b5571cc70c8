"""The Kafka sink: outputs to their topics, acknowledged before anything is committed (kafka-python only).

``flush`` waits for the broker to acknowledge every output (``acks=all``, idempotent producer) and raises
:class:`~stream.kafka.errors.DeliveryError` otherwise, and only then does the source commit the batch's offsets.
Given a :class:`~stream.kafka.transactions.KafkaTransaction` (exactly-once, the default), the sink produces inside
it and the source commits the offsets through it, so outputs and offsets commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    KafkaError,
)

from stream.core.records import Output, OutputKind
from stream.kafka.clients import make_producer, topic_for
from stream.kafka.errors import DeliveryError
from stream.kafka.settings import KafkaSettings
from stream.kafka.transactions import KafkaTransaction

log = logging.getLogger(__name__)

WORKER_HEADER = "offerstream.worker"


class KafkaSink:
    """Produces each output to its kind's topic; ``flush`` returns only when the broker acknowledged all."""

    def __init__(
        self,
        settings: KafkaSettings,
        producer: KafkaProducer | None = None,
        transaction: KafkaTransaction | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.transaction = transaction
        # every output says which worker made it (a header: ``offerstream.worker``), for its readers
        self._worker = [(WORKER_HEADER, worker_id.encode())] if worker_id else []
        self.producer = transaction.producer if transaction is not None else producer or make_producer(settings)
        self._pending: list[tuple[Output, Any]] = []
        self.counts: dict[OutputKind, int] = dict.fromkeys(OutputKind, 0)

    def write(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            if out.kind is OutputKind.EVENT:  # valid events go to the archive, not back to Kafka
                continue
            if self.transaction is not None:
                self.transaction.begin()
            if out.kind is OutputKind.STATE_CHANGE:  # to its input partition's changelog partition, raw
                future = self.producer.send(
                    self.settings.state_changelog_topic, value=out.raw, key=out.key, partition=out.partition
                )
            else:
                future = self.producer.send(
                    topic_for(self.settings, out.kind),
                    value=out.value(),
                    key=out.key,
                    headers=[*out.headers, *self._worker],
                )
            self._pending.append((out, future))

    def flush(self) -> None:
        try:
            self.producer.flush(timeout=self.settings.transaction_timeout_ms / 1000)
        except KafkaError as timeout:  # e.g. the broker stayed away: nothing of the batch may become visible
            if self.transaction is not None:
                self.transaction.abort()
            raise DeliveryError(f"outputs not acknowledged: {timeout!r}") from timeout
        failed = [(out, f.exception) for out, f in self._pending if f.failed()]
        for out, _ in self._pending:
            self.counts[out.kind] += 1
        self._pending.clear()
        if failed:
            first, error = failed[0]
            if self.transaction is not None:
                self.transaction.abort()
            raise DeliveryError(f"{len(failed)} outputs not acknowledged, first {first.kind.value}: {error!r}")

    def close(self) -> None:
        if self.transaction is not None:
            self.transaction.abort()  # a batch cut short by an error: nothing of it may become visible
        try:
            self.producer.flush(timeout=10)
        except KafkaError as exc:  # closing after a failure: report, don't mask the first error
            log.warning("producer flush on close failed: %r", exc)
        self.producer.close(timeout=10)
