"""Topics to files and back: ``offerstream record`` and ``offerstream produce``.

A recording's first line is a header (``{"offerstream_recording": 1, "topic": ..., "partitions": ...}``); each
further line is one message: ``partition``, ``offset``, ``timestamp_ms``, and the key and value as text when
they are UTF-8 (``key``/``value``) or base64 otherwise (``key_b64``/``value_b64``), so the exact bytes survive,
malformed ones included. Messages come partition by partition in offset order.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from stream.core.jsonl import dumps_line, open_binary
from stream.io.file_source import RECORDING_MARK, read_file
from stream.kafka.clients import make_producer
from stream.kafka.errors import DeliveryError
from stream.kafka.settings import KafkaSettings


def iter_topic(
    settings: KafkaSettings,
    topic: str,
    idle_timeout_s: float | None = 5.0,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    **consumer_options: Any,
) -> Iterator[ConsumerRecord]:
    """Every message of ``topic`` from its beginning. Ends once the end offsets are reached and nothing new
    came for ``idle_timeout_s``; with ``idle_timeout_s=None`` it follows until ``stop`` is set."""
    stop = stop or threading.Event()
    consumer_options.setdefault("isolation_level", "read_committed")  # what a transaction aborted never happened
    consumer = KafkaConsumer(**settings.client_options(), group_id=None, enable_auto_commit=False, **consumer_options)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        # Track what we handed out ourselves rather than trusting the consumer's position under load.
        next_offset = dict(consumer.beginning_offsets(tps))
        last_news = clock()
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=200)
            for tp in sorted(polled, key=lambda t: t.partition):
                for message in polled[tp]:
                    next_offset[tp] = message.offset + 1
                    yield message
            if polled:
                last_news = clock()
                continue
            if idle_timeout_s is None or clock() - last_news < idle_timeout_s:
                continue
            ends = consumer.end_offsets(tps)
            if all(next_offset[tp] >= ends[tp] for tp in tps):
                return
            # Transaction markers occupy offsets that are never handed out: after a long silence, trust the
            # consumer's own position for those.
            if clock() - last_news >= 3 * idle_timeout_s and all(
                max(next_offset[tp], consumer.position(tp) or 0) >= ends[tp] for tp in tps
            ):
                return
    finally:
        consumer.close()


def _bytes_entry(name: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode()}


def record_topic(
    settings: KafkaSettings,
    topic: str,
    out: str | Path,
    idle_timeout_s: float | None = 5.0,
    stop: threading.Event | None = None,
) -> int:
    """Write every message of ``topic`` to the recording ``out``; returns how many were written."""
    messages = iter_topic(settings, topic, idle_timeout_s=idle_timeout_s, stop=stop)
    written = 0
    with open_binary(out, "wb") as fh:
        fh.write(dumps_line({RECORDING_MARK: 1, "topic": topic}))
        for m in messages:
            entry: dict[str, Any] = {
                "partition": m.partition,
                "offset": m.offset,
                "timestamp_ms": m.timestamp,
            }
            entry.update(_bytes_entry("key", m.key))
            entry.update(_bytes_entry("value", m.value))
            fh.write(dumps_line(entry))
            written += 1
    return written


FUTURE_STAMP_LIMIT_MS = 3_600_000  # brokers refuse timestamps far ahead (log.message.timestamp.after.max.ms)


def _key_and_time(value: bytes, now_ms: int) -> tuple[bytes | None, int | None]:
    """The message key (``user_id``) and broker timestamp (``ts`` in epoch ms) of an event, when readable.

    A ``ts`` the broker would refuse (negative, or more than an hour ahead of ``now_ms``) is not used as the
    timestamp: the message keeps its bytes and the broker stamps it on arrival; the worker judges the ``ts``."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    user = body.get("user_id")
    ts = body.get("ts")
    key = str(user).encode() if isinstance(user, str | int) and not isinstance(user, bool) else None
    plausible = isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts <= now_ms + FUTURE_STAMP_LIMIT_MS
    stamp = ts if plausible else None
    return key, stamp


@dataclass
class Stamps:
    """The oldest timestamp a produce set on its messages (None: none set, the broker stamped them all)."""

    oldest_ms: int | None = None

    def see(self, stamp: int | None) -> None:
        if stamp is not None and (self.oldest_ms is None or stamp < self.oldest_ms):
            self.oldest_ms = stamp


def produce_values(
    settings: KafkaSettings,
    topic: str,
    values: Iterable[bytes],
    clock_ms: Callable[[], int] | None = None,
    stamps: Stamps | None = None,
) -> int:
    """Send raw messages keyed by their ``user_id`` and stamped with their ``ts`` where they have a plausible one
    (the oldest stamp into ``stamps``); returns how many the broker acknowledged, all of them, or raises
    :class:`DeliveryError`."""
    now_ms = (clock_ms or (lambda: int(time.time() * 1000)))()
    producer = make_producer(settings)
    refused: list[BaseException] = []
    sent = 0
    try:
        for value in values:
            key, stamp = _key_and_time(value, now_ms)
            if stamps is not None:
                stamps.see(stamp)
            producer.send(topic, value=value, key=key, timestamp_ms=stamp).add_errback(refused.append)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    if refused:
        raise DeliveryError(f"{len(refused)} of {sent} messages to {topic} not acknowledged, first: {refused[0]!r}")
    return sent


def produce_files(
    settings: KafkaSettings, topic: str, paths: Sequence[str | Path], stamps: Stamps | None = None
) -> int:
    """Send every line of plain JSONL files (recordings: their exact values) to ``topic``."""
    return produce_values(settings, topic, (r.value for p in paths for r in read_file(p)), stamps=stamps)


def topic_retention_ms(settings: KafkaSettings, topic: str) -> int | None:
    """The topic's ``retention.ms`` as the broker applies it (its own or the broker's default; -1: no time
    limit), or None when the broker does not say."""
    admin = KafkaAdminClient(**settings.client_options())
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})
        described = admin.describe_configs([resource], config_filter="all")
        return int(described["topic"][topic]["retention.ms"]["value"])
    except (KafkaError, KeyError, TypeError, ValueError):
        return None
    finally:
        admin.close()


def retention_warning(settings: KafkaSettings, topic: str, oldest_ms: int | None, now_ms: int) -> str | None:
    """What to tell someone who just stamped messages older than ``topic``'s time retention: the broker deletes
    them at its next retention check (every 5 minutes by default), before a worker may have read them."""
    if oldest_ms is None:
        return None
    retention_ms = topic_retention_ms(settings, topic)
    if retention_ms is None or retention_ms < 0 or oldest_ms >= now_ms - retention_ms:
        return None
    day = 86_400_000
    return (
        f"warning: the oldest message sent to {topic} is stamped {(now_ms - oldest_ms) / day:.1f} days ago, beyond "
        f"the topic's retention.ms ({retention_ms / day:g} days): the broker deletes such messages at its next "
        "retention check (every 5 minutes by default), and a worker that had not read them yet reports them lost. "
        f"Keep them: kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config "
        "retention.ms=-1 (or create the topics with `offerstream topics --retention-ms -1`)."
    )
