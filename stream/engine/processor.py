"""The processing core: records in, decisions, rewards and dead letters out. It imports nothing from Kafka.

A batch goes through three stages, so that the snapshot can score all of its decision points in one
vectorised call while the outputs stay identical to processing the records one at a time:

1. **State** (:mod:`models.behaviour.tracker`), record by record: refuse what breaks the contract (size, JSON, schema,
   absurd values, timestamps far from the record's time or the watermark) as a dead letter with its reason;
   advance the event-time watermark; update the user's and the session's state; close idle sessions; at
   decision points compute the behaviour features. None of this depends on the policy's choices.
2. **Snapshot scores**: the nightly XGBoost snapshot scores every decision point of the batch at once
   (intent; from the price-sensitivity model each offer's purchase probability and a 10 % discount's lift).
3. **Decisions and learning**, record by record in the same order: close the attribution windows the
   watermark passed (reward 0) and attribute purchases (reward = margin × revenue − cost); the policy and the
   price-sensitivity learner learn each reward; closed sessions teach the intent learner (features of their
   first decision point, label: bought) and the segmenter; at a decision point the online learners score,
   the context (behaviour features, offer history, both models' scores, segment) decides which offers the
   eligibility rules allow, the policy chooses one of those with its propensity, and the decision is emitted.

Stage 3 reads only what stage 1 computed and its own state, and stage 1 never reads stage 3's, so running
stage 1 over the whole batch first changes nothing.

State is kept in two kinds. Everything keyed by user (users, sessions, open decisions, offer history, the
de-duplication window) belongs to the record's input partition (:mod:`stream.engine.partition_state`) and runs
on that partition's own event time, so it can move between workers. The learners (the policy, the online
learners, the order-value model) learn from every partition this core reads.

Randomness for a decision comes from a generator seeded by (run seed, decision id), so the same recording and
seed give byte-identical decisions whatever the batch size or a restart. With several partitions the learners
see them interleaved as they were read, so a different interleaving may choose other offers; each decision's
behaviour features and each purchase's join stay the same.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol

import numpy as np

from bandits.base import Policy
from bandits.eligibility import Eligibility
from bandits.offers import Offer
from bandits.order_value import OrderValueModel
from bandits.rewards import OpenDecision, Resolution
from models.behaviour.features import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    as_row,
    offer_history_features,
    user_vector,
)
from models.behaviour.state import DAY_MS
from models.behaviour.tracker import ClosedSession, Tracked, TrackedEvent
from models.learners.base import OnlineLearner
from models.learners.factory import make_learners
from models.learners.price_sensitivity import OFFER_FLAT, OFFER_SHARE
from stream.core.contract import Event, event_to_dict, parse_event
from stream.core.errors import DeadLetterReason, InvalidMessage
from stream.core.lessons import Lesson, LessonMismatch, Shareable
from stream.core.logs import where
from stream.core.records import Output, OutputKind, SourceRecord, dead_letter, iso_ms
from stream.engine.partition_state import PartitionState, PartitionStateFactory, in_memory_states
from stream.engine.settings import ProcessingSettings
from stream.engine.stage_clock import StageClock

log = logging.getLogger(__name__)

PARTITION_HEADER = "offerstream.partition"  # a decision's input partition
SNAPSHOT_VERSION = 3  # 3: state by input partition
LIFT_SHARE = 0.10  # the lift the models report: a 10 % discount against no offer


def offer_terms(offers: Sequence[Offer]) -> dict[str, float]:
    """Each offer's terms as the policies read them: ``offer_discount:<offer>`` (the discount in units of 10 %)
    and ``offer_flat:<offer>`` (1 when a flat fee is waived), the attributes its lift is learned on.

    >>> from bandits.offers import default_catalogue
    >>> terms = offer_terms(default_catalogue())
    >>> terms["offer_discount:discount_15"], terms["offer_flat:free_shipping"], terms["offer_discount:none"]
    (1.5, 1.0, 0.0)
    """
    terms: dict[str, float] = {}
    for o in offers:
        terms[f"offer_discount:{o.name}"] = round(o.share / LIFT_SHARE, 6)
        terms[f"offer_flat:{o.name}"] = 1.0 if o.flat_fee > 0 else 0.0
    return terms


class SnapshotModels(Protocol):
    """What the core needs of a nightly snapshot (see :class:`models.snapshots.registry.Snapshot`)."""

    version: str

    def has(self, name: str) -> bool: ...
    def columns(self, name: str) -> tuple[str, ...]: ...
    def score(self, name: str, rows: np.ndarray) -> np.ndarray: ...


def decision_id_for(event_id: str) -> tuple[str, int]:
    """The decision id an event gets (stable across runs) and the integer that seeds its randomness."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=16).digest()
    return "d-" + digest[:12].hex(), int.from_bytes(digest[8:16], "big")


@dataclass(slots=True)
class _Step:
    record: SourceRecord
    part: PartitionState | None = None
    outputs: list[Output] = field(default_factory=list)
    tracked: Tracked | None = None
    snapshot_scores: dict[str, float] = field(default_factory=dict)


class Processor:
    """Turns clickstream records into decisions, rewards and dead letters, learning as labels resolve."""

    def __init__(
        self,
        settings: ProcessingSettings,
        policy: Policy,
        seed: int = 0,
        learners: Mapping[str, OnlineLearner] | None = None,
        model_snapshot: SnapshotModels | None = None,
        tz: tzinfo = UTC,
        archive_events: bool = False,
        eligibility: Eligibility | None = None,
        clock: StageClock | None = None,
        partition_state: PartitionStateFactory | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else StageClock()  # where the time goes (see stream.engine.stage_clock)
        self.policy = policy
        self.seed = seed
        self.tz = tz
        # builds a partition's state the first time one of its records arrives (the worker's keeps changes)
        self.partition_state = partition_state or in_memory_states(settings, tz)
        self.partitions: dict[int, PartitionState] = {}
        self.learners = dict(learners) if learners is not None else make_learners(seed)
        self.model_snapshot = model_snapshot
        self.archive_events = archive_events
        self.eligibility = eligibility
        # the order expected from a purchase under each offer, learned from the purchases (values at stake)
        self.order_values = OrderValueModel() if settings.value_at_stake == "expected_order" else None
        self.counters: Counter[str] = Counter()
        self._offers = settings.offers.names
        self._offer_terms = offer_terms(settings.offers.offers)
        self._ts_min = int(settings.ts_min.timestamp() * 1000)
        self._ts_max = int(settings.ts_max.timestamp() * 1000)
        self._skew_ms = int(settings.max_ts_skew_s * 1000)
        self._warmup_ms = int(settings.drift_warmup_days * DAY_MS)
        self._alarms = {name: learner.drift.alarms for name, learner in self.learners.items()}

    def partition(self, partition: int) -> PartitionState:
        """The state of an input partition, built on first use."""
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = self.partition_state(partition)
        return part

    def drop_partition(self, partition: int) -> PartitionState | None:
        """Forget a partition this core no longer reads (the caller flushes and closes what it returns)."""
        return self.partitions.pop(partition, None)

    def changelog(self) -> list[Output]:
        """Every partition state's changes since the last call, as state-change outputs for its changelog
        partition (none when the partition states keep no changes, as in a file replay)."""
        out: list[Output] = []
        for p, part in sorted(self.partitions.items()):
            out.extend(Output(OutputKind.STATE_CHANGE, key, {}, partition=p, raw=value) for key, value in part.flush())
        return out

    @property
    def user_count(self) -> int:
        return sum(p.store.user_count for p in self.partitions.values())

    # -- the entry points ----------------------------------------------------------------------------
    def process(self, record: SourceRecord) -> list[Output]:
        return self.process_batch((record,))

    def process_batch(self, records: Sequence[SourceRecord]) -> list[Output]:
        clock = self.clock
        steps = [self._state_stage(record) for record in records]
        t = clock.now()
        self._score_snapshot(steps)
        t = clock.lap("snapshot", t)
        nested = clock.ns["learners"] + clock.ns["policy"]  # timed inside stage 3; ``decide`` is the rest
        outputs: list[Output] = []
        for step in steps:
            if step.tracked is not None and step.part is not None:
                try:
                    step.outputs.extend(self._decision_stage(step.part, step.tracked, step.snapshot_scores))
                except Exception as exc:  # a bug must not stop the stream; logged loudly and dead-lettered
                    step.outputs.append(self._failed(step.record, step.tracked.event, exc))
            outputs.extend(step.outputs)
        clock.lap("decide", t)
        clock.ns["decide"] -= clock.ns["learners"] + clock.ns["policy"] - nested
        return outputs

    # -- stage 1: contract and state -----------------------------------------------------------------
    def _state_stage(self, record: SourceRecord) -> _Step:
        clock = self.clock
        t = clock.now()
        self.counters["records"] += 1
        step = _Step(record)
        self.partition(record.partition).next_offset = record.offset + 1
        if len(record.value) > self.settings.max_message_bytes:
            size = f"{len(record.value)} bytes > max_message_bytes={self.settings.max_message_bytes}"
            step.outputs.append(self._dead(record, DeadLetterReason.OVERSIZED, size))
            clock.lap("parse", t)
            return step
        try:
            event = parse_event(record.value)
            part = step.part = self.partition(record.partition)
            self._check_time(event, record, part.watermark_ms)
        except InvalidMessage as exc:
            step.outputs.append(self._dead(record, exc.reason, exc.detail))
            clock.lap("parse", t)
            return step
        if part.recent_ids.seen_before(event.event_id, event.ts_ms):
            window = f"{self.settings.dedup_window_s:g} s"
            step.outputs.append(
                self._dead(record, DeadLetterReason.DUPLICATE, f"event_id {event.event_id!r} seen within {window}")
            )
            clock.lap("parse", t)
            return step
        t = clock.lap("parse", t)
        try:
            step.tracked = part.tracker.apply(event)
        except Exception as exc:
            step.outputs.append(self._failed(record, event, exc))
            clock.lap("state", t)
            return step
        self.counters["events"] += 1
        part.forget_users(step.tracked.expired_users)
        self.counters["users_expired"] += len(step.tracked.expired_users)
        if self.archive_events:
            step.outputs.append(Output(OutputKind.EVENT, event.user_id.encode(), event_to_dict(event)))
        clock.lap("state", t)
        return step

    def _failed(self, record: SourceRecord, event: TrackedEvent, exc: Exception) -> Output:
        log.exception(
            "processing failed at %s event_id=%s",
            record.where,
            event.event_id,
            extra=where(record.topic, record.partition, record.offset),
        )
        return self._dead(record, DeadLetterReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:500])

    # -- validation beyond the schema ----------------------------------------------------------------
    def _check_time(self, event: Event, record: SourceRecord, watermark_ms: int | None) -> None:
        ts = event.ts_ms
        if not self._ts_min <= ts <= self._ts_max:
            raise InvalidMessage(
                DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                f"ts {ts} outside [{self.settings.ts_min.isoformat()}, {self.settings.ts_max.isoformat()}]",
            )
        reference = record.timestamp_ms if record.timestamp_ms is not None else watermark_ms
        if reference is not None and abs(ts - reference) > self._skew_ms:
            what = "the record's broker time" if record.timestamp_ms is not None else "the watermark"
            raise InvalidMessage(
                DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                f"ts {iso_ms(ts)} is {abs(ts - reference) / 86_400_000:.1f} days from {what} {iso_ms(reference)}",
            )

    def _dead(self, record: SourceRecord, reason: DeadLetterReason, detail: str) -> Output:
        self.counters[f"dead_letters.{reason.value}"] += 1
        log.info(
            "dead letter at %s: %s (%s)",
            record.where,
            reason.value,
            detail[:200],
            extra={**where(record.topic, record.partition, record.offset), "reason": reason.value},
        )
        return dead_letter(record, reason.value, detail)

    # -- stage 2: the snapshot scores every decision point of the batch at once -------------------------
    def _score_snapshot(self, steps: Sequence[_Step]) -> None:
        snapshot = self.model_snapshot
        if snapshot is None:
            return
        points: list[_Step] = []
        feats: list[dict[str, float]] = []
        for step in steps:
            if step.tracked is not None and step.tracked.features is not None:
                points.append(step)
                feats.append(step.tracked.features)
        if not points:
            return
        if snapshot.has("intent"):
            intent = snapshot.score("intent", np.stack([as_row(f, snapshot.columns("intent")) for f in feats]))
            for step, p in zip(points, intent.tolist(), strict=True):
                step.snapshot_scores["intent_snapshot"] = round(p, 6)
        if snapshot.has("price"):
            self._score_offers(snapshot, points, feats)

    def _score_offers(
        self, snapshot: SnapshotModels, points: Sequence[_Step], feats: Sequence[dict[str, float]]
    ) -> None:
        """The price model's purchase probability under each offer's terms (``buy_snapshot:<offer>``, the linear
        policies' prior), and from it the lift of a 10 % discount."""
        offers = self.settings.offers.offers
        terms = sorted({(0.0, 0.0), (LIFT_SHARE, 0.0)} | {(o.share, float(o.flat_fee > 0)) for o in offers})
        at = {t: i for i, t in enumerate(terms)}
        columns = snapshot.columns("price")
        rows = [as_row({**f, OFFER_SHARE: share, OFFER_FLAT: flat}, columns) for f in feats for share, flat in terms]
        p = snapshot.score("price", np.stack(rows)).reshape(len(feats), len(terms))
        for step, probs in zip(points, p.tolist(), strict=True):
            scores = step.snapshot_scores
            scores["lift_snapshot"] = round(probs[at[(LIFT_SHARE, 0.0)]] - probs[at[(0.0, 0.0)]], 6)
            for o in offers:
                scores[f"buy_snapshot:{o.name}"] = round(probs[at[(o.share, float(o.flat_fee > 0))]], 6)

    # -- stage 3: rewards, learning, decisions ----------------------------------------------------------
    def _decision_stage(self, part: PartitionState, t: Tracked, snapshot_scores: dict[str, float]) -> list[Output]:
        event = t.event
        outputs: list[Output] = []
        if t.watermark_advanced:
            outputs.extend(self._resolved(part, r) for r in part.ledger.expire(event.ts_ms))
        for closed in t.closed_before:
            self._learn_session(part, closed)
        if t.revenue is not None:
            self.counters["purchases"] += 1
            resolution = part.ledger.on_purchase(
                event_id=event.event_id,
                session_id=t.session_id,
                ts_ms=event.ts_ms,
                revenue=t.revenue,
                decision_id=event.decision_id,
            )
            if resolution is not None:
                outputs.append(self._resolved(part, resolution))
        if t.features is not None:
            outputs.append(self._decide(part, t, t.features, snapshot_scores))
        for closed in t.closed_after:
            self._learn_session(part, closed)
        return outputs

    def _learn_session(self, part: PartitionState, closed: ClosedSession) -> None:
        """A closed session teaches the intent learner (if it reached a decision point) and the segmenter; their
        drift monitors see it once its partition's history features are filled (``drift_warmup_days``)."""
        self.counters["sessions_closed"] += 1
        t = self.clock.now()
        watch = part.tracker.warm(closed.closed_ms, self._warmup_ms)
        intent = self.learners.get("intent")
        if intent is not None and closed.decision_features is not None:
            intent.learn_one(closed.decision_features, closed.purchased, ts_ms=closed.closed_ms, watch=watch)
        segments = self.learners.get("segments")
        if segments is not None:
            segments.learn_one(closed.user_vector, None, ts_ms=closed.closed_ms, watch=watch)
        self._note_drift(closed.closed_ms)
        self.clock.lap("learners", t)

    def _note_drift(self, ts_ms: int) -> None:
        for name, learner in self.learners.items():
            alarms = learner.drift.alarms
            if alarms != self._alarms[name]:
                self._alarms[name] = alarms
                self.counters[f"drift_alarms.{name}"] += 1
                log.warning(
                    "drift alarm from the %s learner at %s (alarm %d): %s",
                    name,
                    iso_ms(ts_ms),
                    alarms,
                    learner.drift.last_alarm_reason,
                )

    def online_scores(self, features: Mapping[str, float]) -> dict[str, float]:
        """The online learners' view of a decision point: intent, a 10 % discount's lift, the segment. Their own
        scores, before calibration (:meth:`OnlineLearner.score_one`): a calibration refitted as examples arrive
        would move what the policy's coefficients on them mean."""
        scores: dict[str, float] = {}
        intent = self.learners.get("intent")
        if intent is not None:
            scores["intent_online"] = round(intent.score_one(features), 6)
        price = self.learners.get("price_sensitivity")
        if price is not None:
            scores["lift_online"] = round(price.score_one(features), 6)
        segments = self.learners.get("segments")
        if segments is not None:
            scores["segment"] = segments.predict_one(user_vector(features))
        return scores

    def _margin_values(self, features: Mapping[str, float]) -> dict[str, float]:
        """What each offer leaves the shop if the shopper buys: margin × order − the offer's cost on that order.

        The order is the one expected from those who bought under the offer with such a cart
        (``value_at_stake="expected_order"``, :class:`OrderValueModel`, learned from the purchases), or the cart as
        it stands (``"cart"``). The economics are computed, so the policy need only learn who buys under which offer.
        """
        cart = features.get("cart_value", math.nan)
        if math.isnan(cart) or cart <= 0.0:
            return {}
        margin = self.settings.margin
        orders = self.order_values
        values = {}
        for o in self.settings.offers.offers:
            order = cart if orders is None else orders.expected(o.name, cart)
            values[f"margin_value:{o.name}"] = round(margin * order - o.cost(order), 6)
        return values

    def _decide(
        self, part: PartitionState, t: Tracked, features: dict[str, float], snapshot_scores: dict[str, float]
    ) -> Output:
        event = t.event
        decision_id, stream_key = decision_id_for(event.event_id)
        shown, converted = part.shown_and_bought(event.user_id)
        context = features | offer_history_features(shown, converted) | self._margin_values(features)
        context |= self._offer_terms
        clock = self.clock
        tick = clock.now()
        scores = self.online_scores(features) | snapshot_scores  # the learners know the behaviour features only
        tick = clock.lap("learners", tick)
        seen = context | scores  # what the rules and the policy see, and what the reward's learning gets back
        rng = np.random.default_rng([self.seed, stream_key])
        version = self.policy.version
        eligible = self.eligibility.eligible(seen) if self.eligibility is not None else self._offers
        choice = self.policy.choose(seen, eligible, rng)
        clock.lap("policy", tick)
        part.ledger.open(
            OpenDecision(
                decision_id=decision_id,
                user_id=event.user_id,
                session_id=t.session_id,
                offer=choice.offer,
                propensity=choice.propensity,
                ts_ms=event.ts_ms,
                deadline_ms=event.ts_ms + part.ledger.window_ms,
                context=seen,
            )
        )
        offer = self.settings.offers[choice.offer]
        if offer.is_offer:
            part.note_shown(event.user_id)
        self.counters[f"decisions.{choice.offer}"] += 1
        versions = self.model_versions() | {"policy": version}  # the policy as it was when it chose
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "event_id": event.event_id,
            "event_type": event.type,
            "user_id": event.user_id,
            "session_id": t.session_id,
            "ts": iso_ms(event.ts_ms),
            "ts_ms": event.ts_ms,
            "offer": choice.offer,
            "offer_terms": {"share": offer.share, "flat_fee": offer.flat_fee},
            "propensity": choice.propensity,
            "propensities": dict(choice.propensities),
            "eligible": list(eligible),
            "policy": self.policy.name,
            "model_versions": versions,
            "scores": scores,
            "policy_scores": dict(choice.scores),
            "features": context,
        }
        # where it was decided, for readers of the topic (a header: the body is the same wherever it was made)
        return Output(
            OutputKind.DECISION, event.user_id.encode(), body, ((PARTITION_HEADER, str(part.partition).encode()),)
        )

    def _resolved(self, part: PartitionState, r: Resolution) -> Output:
        d = r.decision
        clock = self.clock
        t = clock.now()
        self.policy.update(d.context, d.offer, r.reward, d.propensity, converted=r.purchased)
        cart = d.context.get("cart_value", math.nan)
        if self.order_values is not None and r.purchased and 0 < r.revenue < math.inf and 0 < cart < math.inf:
            self.order_values.learn(d.offer, cart, r.revenue)
        t = clock.lap("policy", t)
        offer = self.settings.offers[d.offer]
        price = self.learners.get("price_sensitivity")
        if price is not None:
            x = {k: d.context[k] for k in FEATURE_NAMES} | {
                OFFER_SHARE: offer.share,
                OFFER_FLAT: float(offer.flat_fee > 0),
            }
            watch = part.tracker.warm(r.resolved_ms, self._warmup_ms)
            price.learn_one(x, r.purchased, weight=1.0 / d.propensity, ts_ms=r.resolved_ms, watch=watch)
            self._note_drift(r.resolved_ms)
            clock.lap("learners", t)
        if offer.is_offer and r.purchased:
            part.note_bought(d.user_id)
        self.counters["rewards"] += 1
        self.counters["conversions"] += int(r.purchased)
        self.counters[f"reward_cents.{d.offer}"] += round(r.reward * 100)
        body = {
            "decision_id": d.decision_id,
            "user_id": d.user_id,
            "session_id": d.session_id,
            "offer": d.offer,
            "propensity": d.propensity,
            "decision_ts_ms": d.ts_ms,
            "reward": r.reward,
            "revenue": r.revenue,
            "purchased": r.purchased,
            "attribution": r.attribution,
            "purchase_event_id": r.purchase_event_id,
            "ts": iso_ms(r.resolved_ms),
            "ts_ms": r.resolved_ms,
        }
        return Output(OutputKind.REWARD, d.user_id.encode(), body)

    def model_versions(self) -> dict[str, str | None]:
        """What scores now: the policy, the feature definition, each online learner, the nightly snapshot."""
        versions: dict[str, str | None] = {"policy": self.policy.version, "features": FEATURES_VERSION}
        versions.update((name, learner.version) for name, learner in self.learners.items())
        versions["snapshot"] = self.model_snapshot.version if self.model_snapshot is not None else None
        return versions

    # -- state ---------------------------------------------------------------------------------------
    @property
    def open_decisions(self) -> int:
        return sum(len(p.ledger) for p in self.partitions.values())

    # -- the fleet's one brain (stream.core.lessons) ---------------------------------------------------
    def lesson(self) -> Lesson | None:
        """What every learner of this core learned since the last lesson (the policy's, the order values', the
        River learners'), or None when none learned anything."""
        return self._bundle(lambda learner: learner.lesson())

    def whole_lesson(self) -> Lesson | None:
        """Everything every learner learned, as one lesson to a core that knows nothing (the fleet's model)."""
        return self._bundle(lambda learner: learner.whole_lesson())

    def _bundle(self, take: Callable[[Shareable], Lesson | None]) -> Lesson | None:
        parts: Lesson = {}
        policy = take(self.policy)
        if policy is not None:
            parts["policy"] = policy
        if self.order_values is not None and (orders := take(self.order_values)) is not None:
            parts["order_values"] = orders
        learners = {name: lesson for name, learner in sorted(self.learners.items()) if (lesson := take(learner))}
        if learners:
            parts["learners"] = learners
        return parts or None

    def adopt_learners(self, other: Processor) -> None:
        """Take ``other``'s learners (policy, order values, River learners) in place of this core's own."""
        self.policy = other.policy
        self.order_values = other.order_values
        self.learners = other.learners
        self._alarms = {name: learner.drift.alarms for name, learner in self.learners.items()}

    def fold(self, lesson: Mapping[str, Any]) -> None:
        """Learn another worker's lesson; a part for a learner this core does not run is an error
        (:class:`LessonMismatch`: the fleet's settings differ), before anything is folded."""
        unknown = sorted(set(lesson.get("learners", {})) - set(self.learners))
        if unknown or ("order_values" in lesson and self.order_values is None):
            raise LessonMismatch(f"a lesson for learners this worker does not run: {unknown or ['order_values']}")
        if "policy" in lesson:
            self.policy.fold(lesson["policy"])
        if "order_values" in lesson and self.order_values is not None:
            self.order_values.fold(lesson["order_values"])
        for name, part in sorted(lesson.get("learners", {}).items()):
            self.learners[name].fold(part)

    def snapshot(self, partitions: bool = True) -> dict[str, Any]:
        """Everything the core has learned and holds (learners as base64 in JSON; see the checkpoint); without
        ``partitions``, the learners and counters only (``"partitions": None``: their states are in their
        changelogs)."""
        return {
            "version": SNAPSHOT_VERSION,
            "seed": self.seed,
            "partitions": {str(p): part.snapshot() for p, part in sorted(self.partitions.items())}
            if partitions
            else None,
            "policy": {"name": self.policy.name, "state": self.policy.snapshot()},
            "learners": {name: learner.snapshot() for name, learner in sorted(self.learners.items())},
            "counters": dict(sorted(self.counters.items())),
        } | ({} if self.order_values is None else {"order_values": self.order_values.snapshot()})

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')} is not {SNAPSHOT_VERSION}")
        if data["policy"]["name"] != self.policy.name:
            raise ValueError(f"snapshot holds policy {data['policy']['name']!r}, running {self.policy.name!r}")
        if sorted(data["learners"]) != sorted(self.learners):
            raise ValueError(f"snapshot holds learners {sorted(data['learners'])}, running {sorted(self.learners)}")
        for part in self.partitions.values():
            part.close()
        self.partitions = {}
        for p, state in (data["partitions"] or {}).items():
            self.partition(int(p)).restore(state)
        self.policy.restore(data["policy"]["state"])
        for name, state in data["learners"].items():
            self.learners[name].restore(state)
        self._alarms = {name: learner.drift.alarms for name, learner in self.learners.items()}
        self.counters = Counter(data["counters"])
        if self.order_values is not None:  # a checkpoint from before the order values starts them afresh
            self.order_values = OrderValueModel()
            if "order_values" in data:
                self.order_values.restore(data["order_values"])
