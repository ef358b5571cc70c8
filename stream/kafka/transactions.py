"""Exactly-once: a batch's decisions, rewards, dead letters and input offsets commit in one Kafka transaction.

With ``kafka.processing_guarantee = "exactly-once"`` (the default) the worker's producer is transactional and
each batch goes through, in this order:

1. the core processes the batch (its state changes in memory only);
2. the archive, when configured, is written and fsynced (it is training data on disk, outside Kafka: a crash
   between this step and 5 archives the batch a second time, never loses it);
3. the first output of the batch begins a transaction; decisions, rewards and dead letters are produced in it;
4. the batch's next offsets go to the transaction with the consumer's group metadata (KIP-447: a member that
   lost its partitions in a rebalance is fenced by the broker and cannot commit them);
5. the transaction commits: outputs and offsets become visible together, or neither does.

The core's state is not written in the transaction. Processing is deterministic (every random choice is
seeded from the run's seed and the event, time is event time), so the state after the committed offsets is a
function of the input up to them: the worker checkpoints its state with the offsets it has just committed
(every ``checkpoint_every_records`` and at a clean stop), and a restarted worker loads the newest checkpoint
and replays, without emitting anything, the input between its offsets and the group's committed ones
(:mod:`stream.app.recovery`). The transactional id is stable across restarts of one worker, so a restarted
worker's ``init_transactions`` aborts whatever its killed predecessor left open (see :func:`default_instance_id`).

Readers of the decisions topic must set ``isolation_level="read_committed"``; with the default
(``read_uncommitted``) they can see decisions of aborted transactions, which a restarted worker then makes
again. Any failure in steps 3-5 aborts the transaction and raises :class:`TransactionAborted`; the worker then
rebuilds its state from the checkpoint (its in-memory state had run ahead of what Kafka holds).
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.kafka.errors import TransactionAborted, WorkerFenced

log = logging.getLogger(__name__)


def default_instance_id(state_dir: str) -> str:
    """Stable per worker instance: this host (or pod) name and the worker's state directory.

    A restarted worker (same host or pod name, same state directory) gets the same id: its transactional id
    fences its killed predecessor, and with static membership it takes the predecessor's place in the group at
    once instead of after the session timeout. Two workers on one host need different state directories
    anyway (each keeps its own checkpoint).
    """
    digest = hashlib.sha256(f"{socket.gethostname()}:{state_dir}".encode()).hexdigest()[:12]
    return f"{socket.gethostname()[:40]}-{digest}"


class KafkaTransaction:
    """One open transaction at a time on a transactional producer: ``begin`` (idempotent), ``commit``, ``abort``."""

    def __init__(self, producer: KafkaProducer, timeout_ms: int = 60_000) -> None:
        self.producer = producer
        self.timeout_ms = timeout_ms
        self.is_open = False
        self.committed = 0
        self.aborted = 0
        try:
            producer.init_transactions()  # fences the previous instance with this id, aborting what it left open
        except ProducerFencedError as exc:
            raise WorkerFenced(f"transactional id fenced at start: {exc!r}") from exc

    def begin(self) -> None:
        if not self.is_open:
            self._call("begin", self.producer.begin_transaction)
            self.is_open = True

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: Any) -> None:
        """Add the consumed ``offsets`` (next offset to read, per partition) and commit everything sent since
        :meth:`begin`. On failure the transaction is aborted and :class:`TransactionAborted` raised."""
        self.begin()
        try:
            manager = self.producer._transaction_manager
            committed = {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
            if committed:  # none: a transaction of outputs only (a stopping worker's last lesson)
                self._await(manager.send_offsets_to_transaction(committed, group_metadata), "sending offsets")
            self._await(manager.begin_commit(), "commit")
        except ProducerFencedError as exc:
            self.is_open = False
            raise WorkerFenced(f"another worker took over this transactional id: {exc!r}") from exc
        except KafkaError as exc:
            self.abort()
            raise TransactionAborted(f"transaction aborted at commit: {exc!r}") from exc
        self.is_open = False
        self.committed += 1

    def abort(self) -> None:
        """Abort the open transaction, if any (best effort: a dead broker aborts it by timeout instead)."""
        if not self.is_open:
            return
        self.is_open = False
        self.aborted += 1
        try:
            self._await(self.producer._transaction_manager.begin_abort(), "abort")
        except KafkaError as exc:
            log.warning("abort_transaction failed (%r); the broker aborts it when the transaction times out", exc)

    def _await(self, result: Any, what: str) -> None:
        """Wait for a transactional request, at most ``timeout_ms``: kafka-python 3.0.12 waits for ever, and a
        request in flight when the broker went away was seen never to complete. A commit given up here may
        still complete; the next producer's ``init_transactions`` settles it before the worker reads the
        committed offsets, so recovery sees it either way."""
        self.producer._sender.wakeup()
        if not result.wait(timeout_ms=self.timeout_ms):
            raise KafkaTimeoutError(f"transaction {what} did not complete within {self.timeout_ms} ms")

    def _call(self, what: str, fn: Any) -> None:
        try:
            fn()
        except ProducerFencedError as exc:
            raise WorkerFenced(f"another worker took over this transactional id: {exc!r}") from exc
        except KafkaError as exc:
            raise TransactionAborted(f"transaction {what} failed: {exc!r}") from exc
