"""A transactional request that never completes (seen in kafka-python 3.0.12 after a broker restart) times out
into an aborted batch instead of hanging the worker."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from kafka.structs import TopicPartition

from stream.kafka.errors import TransactionAborted
from stream.kafka.transactions import KafkaTransaction


class _NeverDone:
    def __init__(self) -> None:
        self._latch = threading.Event()

    def wait(self, timeout_ms=None):
        return self._latch.wait(None if timeout_ms is None else timeout_ms / 1000)


def _stuck_producer():
    manager = SimpleNamespace(
        send_offsets_to_transaction=lambda offsets, meta: _NeverDone(),
        begin_commit=lambda: _NeverDone(),
        begin_abort=lambda: _NeverDone(),
    )
    return SimpleNamespace(
        init_transactions=lambda: None,
        begin_transaction=lambda: None,
        _transaction_manager=manager,
        _sender=SimpleNamespace(wakeup=lambda: None),
    )


def test_a_commit_that_never_completes_times_out_and_is_aborted():
    tx = KafkaTransaction(_stuck_producer(), timeout_ms=200)
    tx.begin()
    started = time.monotonic()
    with pytest.raises(TransactionAborted, match="did not complete within 200 ms"):
        tx.commit({TopicPartition("t", 0): 5}, None)
    assert time.monotonic() - started < 5  # the commit's wait and the abort's, not for ever
    assert not tx.is_open and tx.aborted == 1 and tx.committed == 0
