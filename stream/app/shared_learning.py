"""A worker's part in the fleet's one brain: its lessons out in its transactions, the others' folded in.

Every ``kafka.share_every_s`` (wall clock; 0: every batch) the core's lesson (:mod:`stream.core.lessons`) goes
to the model topic (:mod:`stream.kafka.model_topic`) in the batch's transaction, and every
``kafka.model_every_s`` the fleet's model as this worker holds it (everything learned, and the clock of the
lessons in it). Between batches (and after an empty poll) the worker reads what the others committed and folds
their lessons in. The worker's *clock* says, for every worker, the last lesson folded in (its own: the last it
wrote); it goes into the checkpoint.

At start (:meth:`SharedLearning.start`), after the checkpoint restored the core (:mod:`stream.app.recovery`):

* when no other worker wrote a lesson that the checkpoint lacks, the checkpoint's learners go on: what they
  learned after it was replayed from the input (memory store) or is folded from this worker's own lessons
  (``rocksdb``, whose checkpoint holds the learners only) — a single worker's learners are exactly the
  uninterrupted run's;
* otherwise (another worker learned since, or there is no checkpoint: a new worker, a lost state directory)
  the learners are rebuilt from the fleet's model: the newest ``model`` record, then every lesson after its
  clock, in the topic's order.

What the core learned while replaying its checkpoint's gap is dropped from its next lesson: that input's
lessons are on the topic already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from stream.app.monitoring import WorkerMetrics
from stream.core.lessons import LessonMismatch
from stream.core.records import Output
from stream.engine.processor import Processor
from stream.kafka.model_topic import FleetModel, ModelRecord, ModelTopicReader
from stream.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return int(time.time() * 1000)


class SharedLearning:
    """Lessons and models out, the other workers' lessons in; the clock of what this core holds."""

    def __init__(
        self,
        processor: Processor,
        build: Callable[[], Processor],
        settings: KafkaSettings,
        worker: str,
        metrics: WorkerMetrics | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.processor = processor
        self.build = build  # a core that knows nothing, whose learners the fleet's model teaches
        self.worker = worker
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.share_every_ms = int(settings.share_every_s * 1000)
        self.model_every_ms = int(settings.model_every_s * 1000)
        self.reader = ModelTopicReader(settings)
        self.clock: dict[str, int] = {}  # per worker, the last lesson folded in (this worker's: the last written)
        self.seq = 0
        self.next_share = 0
        self.next_model = 0
        self.sent = 0
        self.folded = 0
        self.refused = 0
        self.changed = False  # learned or folded something since the last model was written
        self.started_ms = 0

    # -- start ---------------------------------------------------------------------------------------
    def start(self, saved: dict[str, Any] | None, replayed_gap: bool) -> str:
        """Bring the core's learners up to the fleet's (see the module's doc); ``saved`` is the checkpoint's
        ``fleet`` section (None: no checkpoint, or one from before the model topic). Returns what was used."""
        fleet = FleetModel.of(self.reader.read_to_end())
        self.processor.lesson()  # learned from a replayed gap, or nothing: on the topic already
        mine = self.seq = fleet.latest().get(self.worker, 0)
        kept = saved is not None and not fleet.others_learned_since(saved["clock"], self.worker)
        if kept and saved is not None:
            clock = {w: int(s) for w, s in saved["clock"].items()}
            own = [r for r in fleet.after(clock) if r.worker == self.worker]
            if not replayed_gap and [r.seq for r in own] != list(range(clock.get(self.worker, 0) + 1, mine + 1)):
                kept = False  # own lessons the checkpoint lacks are gone from the topic: the fleet's model, then
        if kept and saved is not None:
            self.clock = clock
            mine = self.seq = max(mine, clock.get(self.worker, 0))  # never reuse a number the others have seen
            if not replayed_gap:  # the checkpoint's learners stopped at its clock: catch up from own lessons
                for r in own:
                    self._fold(r)
            if mine:
                self.clock[self.worker] = mine
            how = f"the checkpoint ({len(own)} own lessons since, {'replayed' if replayed_gap else 'folded'})"
        elif fleet.empty:
            self.clock = {}
            how = "nothing: the model topic is empty"
        else:
            fresh = self.build()
            self.clock = {}
            refused: list[str] = []
            model = fleet.model
            if model is not None and _folds(fresh, model.lesson, refused, f"the model of {model.worker}"):
                self.clock = dict(model.clock)
            for r in fleet.lessons if fleet.model is None or self.clock else fleet.all_lessons:
                _folds(fresh, r.lesson, refused, f"lesson {r.seq} of {r.worker}")
                self.clock[r.worker] = max(self.clock.get(r.worker, 0), r.seq)
            if refused:  # e.g. the fleet's policy or context changed: what no longer fits is left out
                self.refused += len(refused)
                log.error(
                    "%d records of the model topic do not fit this worker's settings, e.g. %s", len(refused), refused[0]
                )
            fresh.lesson()  # folded in, nobody's new lesson
            self.processor.adopt_learners(fresh)
            if mine:
                self.clock[self.worker] = max(self.clock.get(self.worker, 0), mine)
            by = f"{fleet.model.worker}'s model and " if fleet.model is not None else ""
            how = f"the fleet's model ({by}{len(fleet.lessons)} lessons after it)"
        log.info("learners from %s; clock %s", how, self.clock)
        now = self.started_ms = self.clock_ms()
        self.next_share = now + self.share_every_ms
        self.next_model = now + self.model_every_ms
        return how

    # -- running -------------------------------------------------------------------------------------
    def caught_up(self) -> None:
        """The worker (re)starts consuming now (after a start or a rebalance): lessons taken before are catch-up,
        not counted in how far behind it runs."""
        self.started_ms = self.clock_ms()

    def fold_new(self) -> int:
        """Fold the lessons the other workers committed since the last call; returns how many."""
        folded = 0
        behind = 0
        now = self.clock_ms()
        for r in self.reader.poll():
            if r.kind != "lesson" or r.worker == self.worker or r.seq <= self.clock.get(r.worker, 0):
                continue
            if self._fold(r):
                folded += 1
                # how far behind a running worker is: lessons taken before it (re)started consuming are catch-up
                if self.metrics is not None and r.taken_ms >= self.started_ms:
                    behind += _updates(r.lesson)
                    self.metrics.lesson_lag.observe(max(0, now - r.taken_ms) / 1000)
        if folded and self.metrics is not None:
            self.metrics.lessons.labels("folded").inc(folded)
            if behind:
                self.metrics.behind_updates.observe(behind)
        return folded

    def _fold(self, r: ModelRecord) -> bool:
        try:
            self.processor.fold(r.lesson)
        except (LessonMismatch, KeyError, TypeError, ValueError) as exc:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.lessons.labels("refused").inc()
            log.error("lesson %d of %s not folded (%s): are the fleet's settings the same?", r.seq, r.worker, exc)
            return False
        finally:
            self.clock[r.worker] = max(self.clock.get(r.worker, 0), r.seq)
        self.folded += 1
        self.changed = True
        return True

    def outputs(self, final: bool = False) -> list[Output]:
        """This batch's lesson (when ``share_every_s`` has passed, or ``final``) and the fleet's model (when
        ``model_every_s`` has passed, or ``final``), for the batch's transaction."""
        now = self.clock_ms()
        out: list[Output] = []
        if final or now >= self.next_share:
            self.next_share = now + self.share_every_ms
            lesson = self.processor.lesson()
            if lesson is not None:
                self.seq += 1
                self.clock[self.worker] = self.seq
                out.append(ModelRecord("lesson", self.worker, self.seq, now, lesson).output())
                self.sent += 1
                self.changed = True
                if self.metrics is not None:
                    self.metrics.lessons.labels("sent").inc()
        if (final or now >= self.next_model) and self.changed:
            self.next_model = now + self.model_every_ms
            self.changed = False
            whole = self.processor.whole_lesson()
            if whole is not None:
                out.append(ModelRecord("model", self.worker, self.seq, now, whole, dict(self.clock)).output())
        return out

    def saved(self) -> dict[str, Any]:
        """The checkpoint's ``fleet`` section: the clock of the lessons the core holds."""
        return {"clock": dict(self.clock)}

    def close(self) -> None:
        self.reader.close()


def _folds(core: Processor, lesson: dict[str, Any], refused: list[str], what: str) -> bool:
    try:
        core.fold(lesson)
    except (LessonMismatch, KeyError, TypeError, ValueError) as exc:
        refused.append(f"{what}: {exc}")
        return False
    return True


def _updates(lesson: dict[str, Any]) -> int:
    """The policy's rewards in a lesson (the updates it brings), 0 when its policy learned nothing."""
    policy = lesson.get("policy") or {}
    if "rewards" in policy:  # the linear policies
        return int(policy["rewards"])
    offers = policy.get("offers")  # conjugate Thompson: per offer, count, sum, sum of squares
    return int(sum(n for n, _, _ in offers.values())) if isinstance(offers, dict) else 0
