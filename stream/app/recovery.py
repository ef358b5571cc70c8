"""A restarted worker continues exactly where the group's committed offsets left it.

The worker checkpoints its core's state with the offsets that state reflects (after a commit, every
``checkpoint_every_records`` records and at a clean stop; signed, see :mod:`stream.engine.checkpoint`). At start it
loads the newest checkpoint and compares its offsets ``O`` with the group's committed offsets ``C``:

* ``O == C`` on every partition: the state is exactly the committed one (a clean stop);
* ``O < C`` somewhere (a crash after later commits): the input between ``O`` and ``C`` is read again and
  processed **silently** — its decisions, rewards and dead letters are already in Kafka — which rebuilds the
  state at ``C`` exactly, because processing is deterministic (randomness is seeded by the run's seed and the
  event, time is event time; batch boundaries do not matter). Partitions replay in the order the worker reads
  them (a poll's records partition by partition), so with one partition the rebuilt state is the uninterrupted
  run's bit for bit; with several, each partition's events are applied in order but interleaved as read;
* ``O > C`` (the group's offsets were reset backwards), a partition the checkpoint does not reach any more
  (retention deleted the gap), or a checkpoint this configuration cannot load: the worker says so and starts
  empty rather than double-count or guess.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.app.migrate import migrate_checkpoint
from stream.app.settings import Settings
from stream.engine.checkpoint import checkpoint_key, offsets_key, read_snapshot, snapshot_path, write_snapshot
from stream.engine.processor import Processor
from stream.kafka.clients import polled_records
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int | None]


class GapUnreachable(Exception):
    """The input between a checkpoint's offsets and the committed ones cannot be read back (retention)."""


@dataclass(slots=True)
class Restored:
    """What a start found: the checkpoint's path, the offsets the state now reflects, records replayed."""

    path: Path
    offsets: Offsets = field(default_factory=dict)
    replayed: int = 0
    fleet: dict[str, Any] | None = None  # the checkpoint's clock of the fleet's lessons (stream.app.shared_learning)


def state_key(settings: Settings) -> bytes:
    configured = settings.state_key.get_secret_value().encode() if settings.state_key is not None else None
    return checkpoint_key(settings.state_dir, configured)


def checkpoint_path(settings: Settings) -> Path:
    return snapshot_path(settings.state_dir, settings.kafka.group_id)


def write_checkpoint(
    processor: Processor, offsets: Offsets, settings: Settings, fleet: dict[str, Any] | None = None
) -> None:
    """The core's state with the offsets it reflects (atomically replaces the previous checkpoint), and the
    clock of the fleet's lessons its learners hold (``fleet``). With ``state_store = "rocksdb"`` the learners
    only: the partitions' users may not fit in memory."""
    state = processor.snapshot(partitions=settings.state_store == "memory")
    if fleet is not None:
        state["fleet"] = fleet
    write_snapshot(checkpoint_path(settings), offsets_key(offsets), state, state_key(settings))


def _partitions(offsets: Mapping[str, int | None]) -> Offsets:
    out: Offsets = {}
    for name, offset in offsets.items():
        topic, _, partition = name.rpartition(":")
        out[TopicPartition(topic, int(partition))] = offset
    return out


def restore_state(
    build: Callable[[], Processor],
    settings: Settings,
    committed: Callable[[list[TopicPartition]], Offsets],
) -> tuple[Processor, Restored | None]:
    """A processor holding the state at the group's committed offsets, or a fresh one (and None) when no
    usable checkpoint exists. ``committed(partitions)`` reads where the group starts on each partition (its
    committed offset, or the partition's first one)."""
    path = checkpoint_path(settings)
    found = read_snapshot(path, state_key(settings))
    if found is None:
        return build(), None
    found = (found[0], migrate_checkpoint(found[0], found[1]))  # an earlier version's: every user kept
    saved = _partitions(found[0])
    current = committed(list(saved))
    gaps: dict[TopicPartition, tuple[int | None, int]] = {}
    for tp, at in saved.items():
        now = current.get(tp)
        if now is None and at is None:
            continue
        if now is None or (at is not None and at > now):
            log.warning(
                "checkpoint %s is stale: %s at %s, the group at %s (offsets reset?); starting empty", path, tp, at, now
            )
            return build(), None
        if at != now:
            gaps[tp] = (at, now)
    processor = build()
    try:
        processor.restore(found[1])
    except (ValueError, KeyError, TypeError) as exc:
        log.error("checkpoint %s does not fit this configuration (%s); starting empty", path, exc)
        return build(), None
    restored = Restored(path, {tp: current.get(tp) for tp in saved}, fleet=found[1].get("fleet"))
    if gaps and found[1].get("partitions") is None:
        # the checkpoint holds no partitions to replay into: the learners go on from where it was written, and
        # the partitions come back from their changelogs on assignment
        log.info("restored the learners from %s; %d records learned since are not replayed", path, _gap_size(gaps))
        return processor, restored
    if gaps:
        try:
            restored.replayed = replay_gap(processor, settings.kafka, gaps)
        except GapUnreachable as exc:
            log.error("checkpoint %s: %s; starting empty", path, exc)
            return build(), None
    log.info(
        "restored state from %s at offsets %s (%d records replayed silently up to the committed offsets)",
        path,
        offsets_key(saved),
        restored.replayed,
    )
    return processor, restored


def _gap_size(gaps: Mapping[TopicPartition, tuple[int | None, int]]) -> int:
    return sum(end - (start or 0) for start, end in gaps.values())


def _tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def replay_gap(
    processor: Processor,
    settings: KafkaSettings,
    gaps: Mapping[TopicPartition, tuple[int | None, int]],
    stall_s: float = 60.0,
) -> int:
    """Process the records in ``[start, end)`` of each partition (None: from its beginning), discarding the
    outputs; returns how many. Raises :class:`GapUnreachable` when a gap starts before what the topic still
    holds or no record arrives for ``stall_s``."""
    consumer = KafkaConsumer(
        **settings.client_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level=settings.isolation_level,
        max_poll_records=settings.max_poll_records,
        fetch_max_bytes=settings.fetch_max_bytes,
    )
    try:
        tps = list(gaps)
        consumer.assign(tps)
        first = consumer.beginning_offsets(tps)
        for tp, (start, _) in gaps.items():
            if start is None:
                consumer.seek(tp, first[tp])
            elif start < first[tp]:
                raise GapUnreachable(f"{tp.topic}:{tp.partition} now starts at {first[tp]}, after {start}")
            else:
                consumer.seek(tp, start)
        ends = {tp: end for tp, (_, end) in gaps.items()}
        replayed = 0
        news = time.monotonic()
        while ends:
            polled = consumer.poll(timeout_ms=500, max_records=settings.max_poll_records)
            records = [
                r for r in polled_records(polled) if r.offset < ends.get(TopicPartition(r.topic, r.partition), -1)
            ]
            if records:
                processor.process_batch(records)  # outputs dropped: they were committed before the crash
                processor.changelog()  # and so were the state changes (an on-disk store is made durable)
                replayed += len(records)
                news = time.monotonic()
            for tp in [tp for tp in ends if consumer.position(tp) >= ends[tp]]:
                del ends[tp]
                consumer.pause(tp)
            if ends and time.monotonic() - news > stall_s:
                raise GapUnreachable(f"no records for {stall_s:.0f} s while replaying up to {offsets_key(dict(ends))}")
        return replayed
    finally:
        consumer.close()
