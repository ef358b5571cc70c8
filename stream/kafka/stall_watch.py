"""Notice a consumer that stopped receiving records although there is more to read.

kafka-python 3.0.12 was seen, after a broker restart, to poll for ever without a fetch going out (no error, no
log line): a worker sitting silent with a full topic in front of it. A consumer rebuilt right after such a
restart could sit just as silent, and one was seen stuck while its own view said it had nothing left to read
(group stable, partition assigned, the committed offset 9,679 behind the end). (That last one was most likely
the broker's retention deleting records stamped months ago, which a restarted broker checks for at once; the
client then moves to the partition's new start without a word. :class:`~stream.kafka.source.KafkaSource` now
reports such a skip as lost input.) So the client's view cannot settle the question. :class:`StallWatch` looks
at it after each poll and, when nothing has moved for ``limit_s``, has a throw-away reader (the source's
``probe``) read from where the worker is: records there that the consumer does not return are a stall, raised
as :class:`~stream.core.errors.SourceStalled` so that the worker rebuilds its clients; nothing there (caught up, or
only transaction markers and aborted records) is idleness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka.structs import TopicPartition

from stream.kafka.errors import SourceStalled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerView:
    """What the consumer and the worker know after a poll, without asking the broker.

    ``ends`` maps each assigned partition to the client's (fetch position, highwater mark), either unknown
    (``None``): the position before the group's committed offset is fetched, the highwater before a fetch
    answers. ``next`` is, per partition, the offset of the next record the worker would process (after the
    last one handed to it, else where the group started), which the client's position may have passed without
    handing anything over. ``member`` is the group membership state ("stable", "rebalancing", "unjoined").
    """

    ends: Mapping[TopicPartition, tuple[int | None, int | None]]
    member: str = "stable"
    coordinator_known: bool = True
    next: Mapping[TopicPartition, int] = field(default_factory=dict)

    @property
    def progress(self) -> dict[TopicPartition, int | None]:
        """The client's positions: what moves when the consumer makes progress."""
        return {tp: pos for tp, (pos, _) in self.ends.items()}

    def describe(self) -> str:
        parts = ", ".join(
            f"{_name(tp)} at {_unknown(pos)} of {_unknown(hw)} (next for the worker: {_unknown(self.next.get(tp))})"
            for tp, (pos, hw) in sorted(self.ends.items())
        )
        coordinator = "known" if self.coordinator_known else "unknown"
        return f"assigned: {parts or 'nothing'}; member {self.member}, coordinator {coordinator}"


def _unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


# Given the next offset the worker would process per partition, the offset of the first record a fresh reader
# finds at or after it, for the partitions where it finds one.
Probe = Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, int]]


class StallWatch:
    """Raises :class:`SourceStalled` when polls bring nothing and the consumer's view does not change for
    ``limit_s`` while there is something to read; ``limit_s`` 0 turns it off.

    After ``limit_s`` without records and without a position moving:

    - nothing assigned while the member is not stable (a join that never finishes) is a stall; a stable member
      with nothing assigned (more workers than partitions) is idle;
    - a partition whose position is behind its known highwater mark is a stall;
    - otherwise ``probe`` reads each assigned partition afresh from the worker's next offset: a record there is
      a stall (the consumer has it to give and does not), and so is a probe that fails; nothing there is
      idleness (caught up, or only transaction markers and aborted records, which read_committed skips, or
      records the broker deleted before they were read: the source reports those as lost). The
      client's own position and highwater marks are not trusted to say "caught up": one was seen stuck with
      its view claiming exactly that.

    Records, a moving position, a new assignment or an idle verdict reset the clock, so an idle worker probes
    once per ``limit_s``. An input transaction left open longer than the limit holds the position below the
    highwater mark (read_committed stops at it); the rebuild that follows is harmless.
    """

    def __init__(
        self,
        limit_s: float,
        clock: Callable[[], float] = time.monotonic,
        probe: Probe | None = None,
    ) -> None:
        self.limit_s = limit_s
        self.clock = clock
        self.probe = probe
        self._progress: Mapping[TopicPartition, int | None] = {}
        self._member = ""
        self._progress_at = clock()

    def observe(self, got_records: bool, view: ConsumerView) -> None:
        """After each poll; raises :class:`SourceStalled` on a stall."""
        if self.limit_s <= 0:
            return
        now = self.clock()
        if got_records or view.progress != self._progress or view.member != self._member:
            self._restart(view, now)
            return
        if now - self._progress_at < self.limit_s:
            return
        reason = self._stall_reason(view)
        if reason is None:
            self._restart(view, now)  # idle, not stalled: look again after another limit_s
            return
        raise SourceStalled(f"no records for {now - self._progress_at:.0f} s while {reason} ({view.describe()})")

    def reset(self) -> None:
        """Count from now: the worker was busy (e.g. restoring partitions' state) rather than polling."""
        self._progress_at = self.clock()

    def _restart(self, view: ConsumerView, now: float) -> None:
        self._progress, self._member, self._progress_at = view.progress, view.member, now

    def _stall_reason(self, view: ConsumerView) -> str | None:
        if not view.ends:
            return None if view.member == "stable" else "the group join does not finish"
        behind = [tp for tp, (pos, hw) in view.ends.items() if pos is not None and hw is not None and pos < hw]
        if behind:
            return "behind the highwater mark"
        if self.probe is None:
            return None
        starts = {tp: view.next.get(tp, pos) for tp, (pos, _) in view.ends.items()}
        unplaced = [tp for tp, start in starts.items() if start is None]
        if unplaced:
            return f"{_names(unplaced)} have no position"
        try:
            found = self.probe({tp: start for tp, start in starts.items() if start is not None})
        except Exception as exc:
            return f"a fresh reader cannot read {_names(list(starts))} ({type(exc).__name__}: {exc})"
        if found:
            records = ", ".join(f"{_name(tp)} at {offset}" for tp, offset in sorted(found.items()))
            return f"a fresh reader finds records the consumer does not return ({records})"
        log.info("no records for %.0f s and a fresh reader finds none either: idle (%s)", self.limit_s, view.describe())
        return None


def _names(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(_name(tp) for tp in sorted(tps))
