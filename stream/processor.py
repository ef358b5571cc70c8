"""The processing core: one record in, its outputs out. It imports nothing from Kafka.

For each record, in order:
1. refuse what breaks the contract (size, JSON, schema, absurd values, timestamps far from the record's time
   or the watermark) — a dead letter with the reason, never an exception;
2. advance the event-time watermark and close the attribution windows it passed (reward 0);
3. update the user's and the session's state;
4. on a purchase, attribute it to an open decision and let the policy learn the reward;
5. at a decision point, compute the features, let the policy choose an offer with its propensity and emit
   the decision.

Randomness for a decision comes from a generator seeded by (run seed, decision id), so the same recording and
seed give byte-identical decisions whatever the batch size, the partition interleaving or a restart.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Any

import numpy as np

from bandits.base import Policy
from bandits.rewards import OpenDecision, Resolution, RewardLedger
from models.features import FEATURES_VERSION, session_features
from stream.contract import Event, parse_event
from stream.errors import DeadLetterReason, InvalidMessage
from stream.records import Output, OutputKind, SourceRecord, dead_letter, iso_ms
from stream.settings import ProcessingSettings
from stream.state import COUNTED_TYPES, InMemoryStore, SessionState, UserState

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
_SWEEP_EVERY_MS = 60_000


def decision_id_for(event_id: str) -> tuple[str, int]:
    """The decision id an event gets (stable across runs) and the integer that seeds its randomness."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=16).digest()
    return "d-" + digest[:12].hex(), int.from_bytes(digest[8:16], "big")


class Processor:
    """Turns clickstream records into decisions, rewards and dead letters."""

    def __init__(self, settings: ProcessingSettings, policy: Policy, seed: int = 0) -> None:
        self.settings = settings
        self.policy = policy
        self.seed = seed
        self.store = InMemoryStore()
        self.ledger = RewardLedger(settings.offers, settings.margin, int(settings.attribution_window_s * 1000))
        self.watermark_ms: int | None = None
        self.counters: Counter[str] = Counter()
        self._offers = settings.offers.names
        self._decision_events = frozenset(settings.decision_events)
        self._ts_min = int(settings.ts_min.timestamp() * 1000)
        self._ts_max = int(settings.ts_max.timestamp() * 1000)
        self._skew_ms = int(settings.max_ts_skew_s * 1000)
        self._gap_ms = int(settings.session_gap_s * 1000)
        self._ttl_ms = int(settings.session_ttl_s * 1000)
        self._last_sweep_ms = 0

    # -- the one entry point -------------------------------------------------------------------------
    def process(self, record: SourceRecord) -> list[Output]:
        self.counters["records"] += 1
        if len(record.value) > self.settings.max_message_bytes:
            size = f"{len(record.value)} bytes > max_message_bytes={self.settings.max_message_bytes}"
            return [self._dead(record, DeadLetterReason.OVERSIZED, size)]
        try:
            event = parse_event(record.value)
            self._check_time(event, record)
        except InvalidMessage as exc:
            return [self._dead(record, exc.reason, exc.detail)]
        try:
            return self._apply(event)
        except Exception as exc:  # a bug must not stop the stream; it is logged loudly and dead-lettered
            log.exception("processing failed at %s event_id=%s", record.where, event.event_id)
            return [self._dead(record, DeadLetterReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:500])]

    # -- validation beyond the schema ----------------------------------------------------------------
    def _check_time(self, event: Event, record: SourceRecord) -> None:
        ts = event.ts_ms
        if not self._ts_min <= ts <= self._ts_max:
            raise InvalidMessage(
                DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                f"ts {ts} outside [{self.settings.ts_min.isoformat()}, {self.settings.ts_max.isoformat()}]",
            )
        reference = record.timestamp_ms if record.timestamp_ms is not None else self.watermark_ms
        if reference is not None and abs(ts - reference) > self._skew_ms:
            what = "the record's broker time" if record.timestamp_ms is not None else "the watermark"
            raise InvalidMessage(
                DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                f"ts {iso_ms(ts)} is {abs(ts - reference) / 86_400_000:.1f} days from {what} {iso_ms(reference)}",
            )

    def _dead(self, record: SourceRecord, reason: DeadLetterReason, detail: str) -> Output:
        self.counters[f"dead_letters.{reason.value}"] += 1
        log.info("dead letter at %s: %s (%s)", record.where, reason.value, detail[:200])
        return dead_letter(record, reason.value, detail)

    # -- a valid event -------------------------------------------------------------------------------
    def _apply(self, event: Event) -> list[Output]:
        self.counters["events"] += 1
        outputs: list[Output] = []
        if self.watermark_ms is None or event.ts_ms > self.watermark_ms:
            self.watermark_ms = event.ts_ms
            outputs.extend(self._resolved(r) for r in self.ledger.expire(event.ts_ms))
            if event.ts_ms - self._last_sweep_ms >= _SWEEP_EVERY_MS:
                self._last_sweep_ms = event.ts_ms
                self.counters["sessions_expired"] += self.store.expire(event.ts_ms, self._ttl_ms)
        user, session = self._track(event)
        if event.type == "purchase":
            revenue = self._purchase(event, user, session)
            resolution = self.ledger.on_purchase(
                event_id=event.event_id,
                session_id=session.session_id,
                ts_ms=event.ts_ms,
                revenue=revenue,
                decision_id=event.decision_id,
            )
            if resolution is not None:
                outputs.append(self._resolved(resolution))
        if event.type in self._decision_events and session.decisions < self.settings.max_decisions_per_session:
            outputs.append(self._decide(event, user, session))
        return outputs

    def _track(self, event: Event) -> tuple[UserState, SessionState]:
        ts = event.ts_ms
        user = self.store.get_user(event.user_id)
        if user is None:
            user = UserState(event.user_id, first_ms=ts, last_ms=ts)
            self.store.put_user(user)
        session_id = event.session_id or self._inferred_session(user, ts)
        session = self.store.get_session(session_id)
        if session is None:
            session = SessionState(session_id, event.user_id, started_ms=ts, last_ms=ts)
            self.store.put_session(session)
            user.sessions += 1
        kind = event.type
        if kind in COUNTED_TYPES:
            session.counts[kind] = session.counts.get(kind, 0) + 1
        if event.price is not None and kind in ("product_view", "add_to_cart"):
            session.price_sum += event.price
            session.price_n += 1
        if event.cart_value is not None:
            session.cart_value = event.cart_value
        elif event.price is not None and kind in ("add_to_cart", "remove_from_cart"):
            delta = event.price * (event.quantity if event.quantity is not None else 1)
            session.cart_value = max(0.0, session.cart_value + (delta if kind == "add_to_cart" else -delta))
        session.device = event.device or session.device
        session.referrer = event.referrer or session.referrer
        session.last_ms = max(session.last_ms, ts)
        user.last_ms = max(user.last_ms, ts)
        user.current_session = session_id
        return user, session

    def _inferred_session(self, user: UserState, ts: int) -> str:
        """Sessionise by inactivity when the event names no session."""
        current = self.store.get_session(user.current_session) if user.current_session else None
        if current is not None and 0 <= ts - current.last_ms <= self._gap_ms:
            return current.session_id
        return f"{user.user_id}:{ts}"

    def _purchase(self, event: Event, user: UserState, session: SessionState) -> float:
        if event.revenue is not None:
            revenue = event.revenue
        elif event.cart_value is not None:
            revenue = event.cart_value
        else:
            revenue = session.cart_value
        user.purchases += 1
        user.revenue += revenue
        session.cart_value = 0.0
        self.counters["purchases"] += 1
        return revenue

    # -- deciding and learning -----------------------------------------------------------------------
    def _decide(self, event: Event, user: UserState, session: SessionState) -> Output:
        decision_id, stream_key = decision_id_for(event.event_id)
        features = session_features(session, user, event.ts_ms)
        rng = np.random.default_rng([self.seed, stream_key])
        version = self.policy.version
        choice = self.policy.choose(features, self._offers, rng)
        session.decisions += 1
        self.ledger.open(
            OpenDecision(
                decision_id=decision_id,
                user_id=event.user_id,
                session_id=session.session_id,
                offer=choice.offer,
                propensity=choice.propensity,
                ts_ms=event.ts_ms,
                deadline_ms=event.ts_ms + self.ledger.window_ms,
                context=features,
            )
        )
        self.counters[f"decisions.{choice.offer}"] += 1
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "event_id": event.event_id,
            "event_type": event.type,
            "user_id": event.user_id,
            "session_id": session.session_id,
            "ts": iso_ms(event.ts_ms),
            "ts_ms": event.ts_ms,
            "offer": choice.offer,
            "propensity": choice.propensity,
            "propensities": dict(choice.propensities),
            "policy": self.policy.name,
            "model_versions": {"policy": version, "features": FEATURES_VERSION},
            "scores": dict(choice.scores),
            "features": features,
        }
        return Output(OutputKind.DECISION, event.user_id.encode(), body)

    def _resolved(self, r: Resolution) -> Output:
        d = r.decision
        self.policy.update(d.context, d.offer, r.reward, d.propensity)
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

    # -- state ---------------------------------------------------------------------------------------
    @property
    def open_decisions(self) -> int:
        return len(self.ledger)

    def snapshot(self) -> dict[str, Any]:
        """Everything the core has learned and holds, as JSON-able data."""
        return {
            "version": SNAPSHOT_VERSION,
            "seed": self.seed,
            "watermark_ms": self.watermark_ms,
            "last_sweep_ms": self._last_sweep_ms,
            "store": self.store.snapshot(),
            "ledger": self.ledger.snapshot(),
            "policy": {"name": self.policy.name, "state": self.policy.snapshot()},
            "counters": dict(sorted(self.counters.items())),
        }

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')} is not {SNAPSHOT_VERSION}")
        if data["policy"]["name"] != self.policy.name:
            raise ValueError(f"snapshot holds policy {data['policy']['name']!r}, running {self.policy.name!r}")
        self.watermark_ms = data["watermark_ms"]
        self._last_sweep_ms = data["last_sweep_ms"]
        self.store.restore(data["store"])
        self.ledger.restore(data["ledger"])
        self.policy.restore(data["policy"]["state"])
        self.counters = Counter(data["counters"])
