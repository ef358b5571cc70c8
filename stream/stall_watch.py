"""Notice a consumer that stopped receiving records although there is more to read.

kafka-python 3.0.12 was seen, after a broker restart, to poll for ever without a fetch going out (no error, no
log line): a worker sitting silent with a full topic in front of it. And a consumer rebuilt right after such a
restart can sit just as silent before its first fetch answers, so that it does not even know how far behind it
is. :class:`StallWatch` looks at what the consumer knows after each poll and, when nothing has moved for
``limit_s``, decides whether that is idleness (caught up, or a stable member with nothing assigned) or a stall,
which it raises as :class:`~stream.errors.SourceStalled` so that the worker rebuilds its clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka.structs import TopicPartition

from stream.errors import SourceStalled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerView:
    """What the consumer knows after a poll, without asking the broker.

    ``ends`` maps each assigned partition to (fetch position, highwater mark), either unknown (``None``): the
    position before the group's committed offset is fetched, the highwater before a fetch answers. ``member``
    is the group membership state ("stable", "rebalancing", "unjoined").
    """

    ends: Mapping[TopicPartition, tuple[int | None, int | None]]
    member: str = "stable"
    coordinator_known: bool = True
    progress: Mapping[TopicPartition, int | None] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", {tp: pos for tp, (pos, _) in self.ends.items()})

    def describe(self) -> str:
        parts = ", ".join(
            f"{tp.topic}[{tp.partition}] at {_unknown(pos)} of {_unknown(hw)}"
            for tp, (pos, hw) in sorted(self.ends.items())
        )
        coordinator = "known" if self.coordinator_known else "unknown"
        return f"assigned: {parts or 'nothing'}; member {self.member}, coordinator {coordinator}"


def _unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


EndLookup = Callable[[Sequence[TopicPartition]], Mapping[TopicPartition, int]]


class StallWatch:
    """Raises :class:`SourceStalled` when polls bring nothing and the consumer's view does not change for
    ``limit_s`` while there is something to read; ``limit_s`` 0 turns it off.

    After ``limit_s`` without records and without a position moving:

    - a partition behind its known highwater mark is a stall;
    - otherwise ``read_ends`` asks the broker where the assigned partitions end (the last stable offsets under
      ``read_committed``): a position behind that end is a stall, and so is a broker that cannot answer within
      the lookup's own timeout. The client's own highwater marks are not trusted to say "caught up": they come
      from fetch responses, a fresh consumer has none, and after a broker restart one was seen stale, equal to
      the position, while no fetch went out any more. A consumer the broker confirms caught up is idle;
    - nothing assigned while the member is not stable (a join that never finishes) is a stall; a stable member
      with nothing assigned (more workers than partitions) is idle.

    Records, a moving position (e.g. past transaction markers), a new assignment or a lookup that finds the
    consumer caught up reset the clock. An input transaction left open longer than the limit holds the position
    below the highwater mark (read_committed stops at it); the rebuild that follows is harmless.
    """

    def __init__(
        self,
        limit_s: float,
        clock: Callable[[], float] = time.monotonic,
        read_ends: EndLookup | None = None,
    ) -> None:
        self.limit_s = limit_s
        self.clock = clock
        self.read_ends = read_ends
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

    def _restart(self, view: ConsumerView, now: float) -> None:
        self._progress, self._member, self._progress_at = view.progress, view.member, now

    def _stall_reason(self, view: ConsumerView) -> str | None:
        if not view.ends:
            return None if view.member == "stable" else "the group join does not finish"
        behind = [tp for tp, (pos, hw) in view.ends.items() if pos is not None and hw is not None and pos < hw]
        if behind:
            return "behind the highwater mark"
        if self.read_ends is None:
            return None
        # Caught up as far as the client knows, or it does not know: its highwater marks come from fetch
        # responses, and a broker just restarted was seen to report a stale one before the fetches stopped.
        assigned = sorted(view.ends)
        try:
            ends = self.read_ends(assigned)
        except Exception as exc:
            return f"the broker does not say where {_names(assigned)} end ({type(exc).__name__}: {exc})"
        lagging = [tp for tp in assigned if tp in ends and (view.ends[tp][0] or 0) < ends[tp]]
        if lagging:
            found = ", ".join(f"{tp.topic}[{tp.partition}] ends at {ends[tp]}" for tp in lagging)
            return f"behind the end the broker reports ({found})"
        log.debug("stall watch: %s caught up by the broker's end offsets %s", _names(assigned), ends)
        return None


def _names(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
