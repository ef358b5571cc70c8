"""Helpers for the broker-backed tests: wait for a condition, ask whether a consumer group is done."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from stream.settings import Settings


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def group_done(settings: Settings, expected_total: int) -> bool:
    """True when the group's committed offsets on the clickstream topic add up to ``expected_total``."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(settings.kafka.group_id).get(settings.kafka.group_id, {})
    except KafkaError:  # the group coordinator is still loading: not done yet
        return False
    finally:
        admin.close()
    committed = sum(o.offset for tp, o in offsets.items() if tp.topic == settings.kafka.clickstream_topic)
    return committed >= expected_total
