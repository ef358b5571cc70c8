"""The simulation loop: shoppers' sessions merged into one event stream in event-time order, lazily.

One heap holds, per shopper, the time of their next *candidate* session, plus every session in progress
keyed by its next event's time; nothing is generated before it is due, so memory is O(users + active
sessions) whatever the horizon. A candidate session at time ``t`` draws from its own generator, seeded by
(seed, user, index), whether it happens (thinning: the scenario's traffic × the daily cycle over their
maximum) and the gap to the shopper's next candidate (exponential at the shopper's rate × that
maximum, plus 30 minutes after a session that happened); a session that happens then plans itself from the
same generator (``sessions.py``). No session starts at or after the horizon; sessions in progress then run
to their end (minutes). All randomness comes from the seed; time starts at ``start`` (default
2026-01-05T00:00:00Z), never from the wall clock.

Closed loop: after emitting a decision-eligible event (a session's first add_to_cart, or its checkout_start
when it has seen no offer yet) the session is blocked until ``respond`` is called for that event; the others
go on. Its next event is then due at max(its planned time, the last emitted event's time).

>>> sim = Simulation(days=1, users=50, seed=1)
>>> first = sim.next_event()
>>> first["type"], first["ts"] >= 1767571200000
('session_start', True)
"""

from __future__ import annotations

import heapq
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bandits.offers import Offer, catalogue_by_name, default_catalogue
from stream.simulator.behaviour import CART
from stream.simulator.oracle import OracleMemory, expected_profits, truth_record
from stream.simulator.scenarios import DAILY_AMPLITUDE, Scenario, daily_cycle, get_scenario
from stream.simulator.sessions import Draws, Session
from stream.simulator.shoppers import CATEGORIES, Population, ProductCatalogue
from stream.simulator.stats import FunnelStats

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MIN_GAP_AFTER_SESSION_MS = 30 * 60_000
ARRIVALS_STREAM = 3
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0


def to_epoch_ms(start: datetime | str | int | None) -> int:
    """Epoch milliseconds of ``start``: an aware datetime, an ISO-8601 string with offset, or ms already."""
    if start is None:
        start = DEFAULT_START
    if isinstance(start, int):
        return start
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    return int(start.timestamp() * 1000)


class Simulation:
    """A shop of ``users`` shoppers over ``days`` days under ``scenario``; see the module docstring."""

    def __init__(
        self,
        scenario: str | Scenario = "stationary",
        days: float = 7,
        users: int = 1000,
        seed: int = 7,
        start: datetime | str | int | None = None,
        margin: float = 0.30,
        closed_loop: bool = False,
        offers: tuple[Offer, ...] | None = None,
        oracle_memory: int = 200_000,
    ) -> None:
        if users < 1 or days <= 0:
            raise ValueError("users must be ≥ 1 and days > 0")
        self.scenario = get_scenario(scenario)
        self.days, self.users, self.seed, self.margin = float(days), users, seed, margin
        self.closed_loop = closed_loop
        self.offers = offers if offers is not None else default_catalogue()
        self.start_ms = to_epoch_ms(start)
        self.end_ms = self.start_ms + int(self.days * DAY_MS)
        self._by_name = catalogue_by_name(self.offers)
        self._population = Population(users, seed, len(CATEGORIES))
        self._products = ProductCatalogue(seed)
        self._max_intensity = self.scenario.max_traffic * (1.0 + DAILY_AMPLITUDE)
        rates = np.array(self._population.session_rate) * self._max_intensity
        first = np.random.default_rng([seed, ARRIVALS_STREAM]).exponential(1.0, users) / rates
        arrivals = ((self.start_ms + int(d * DAY_MS), u, u) for u, d in enumerate(first.tolist()))
        self._heap: list[tuple[int, int, Any]] = [e for e in arrivals if e[0] < self.end_ms]
        heapq.heapify(self._heap)
        self._order = users
        self._candidates = [0] * users
        self._awaiting: dict[str, tuple[Session, str]] = {}
        self._last_ts = self.start_ms
        self._oracle = OracleMemory(oracle_memory)
        self._stats = FunnelStats(margin)

    # -- the stream -----------------------------------------------------------------------------------

    def next_event(self) -> dict[str, Any] | None:
        """The next event in event-time order; None when nothing unblocked is left (see ``done``)."""
        heap = self._heap
        while heap:
            ts, _, item = heapq.heappop(heap)
            if type(item) is int:
                session = self._candidate(ts, item)
                if session is None:
                    continue
            else:
                session = item
            return self._emit(session)
        return None

    def _push(self, ts: int, item: Any) -> None:
        self._order += 1
        heapq.heappush(self._heap, (ts, self._order, item))

    def _candidate(self, ts: int, u: int) -> Session | None:
        index = self._candidates[u]
        self._candidates[u] = index + 1
        draws = Draws(self.seed, u, index)
        hour = (ts % DAY_MS) / HOUR_MS
        weekday = (ts / DAY_MS + EPOCH_WEEKDAY) % 7.0
        cond = self.scenario.conditions_at((ts - self.start_ms) / DAY_MS, self.days, weekday)
        happens = draws.u() * self._max_intensity < cond.traffic * daily_cycle(hour)
        rate = self._population.session_rate[u] * self._max_intensity
        nxt = ts + int(-math.log(1.0 - draws.u()) / rate * DAY_MS)
        if happens:
            nxt += MIN_GAP_AFTER_SESSION_MS
        if nxt < self.end_ms:
            self._push(nxt, u)
        if not happens:
            return None
        return Session(self._population.shopper(u), index, ts, draws, cond, self._products)

    def _emit(self, session: Session) -> dict[str, Any]:
        ev = session.pending
        ts = ev["ts"]
        self._last_ts = ts
        stats = self._stats
        stats.events += 1
        kind = ev["type"]
        stats.by_type[kind] += 1
        if kind == "session_start":
            stats.session_started(session.device)
        elif kind == "purchase":
            stats.purchased(session.offer, session.value, session.device)
        stage = session.eligible
        if stage is not None:
            self._decision_point(session, stage, ev)
            if self.closed_loop:
                self._awaiting[ev["event_id"]] = (session, stage)
                return ev
        self._continue(session, ts)
        return ev

    def _decision_point(self, session: Session, stage: str, ev: dict[str, Any]) -> None:
        if stage == CART:
            self._stats.carting_sessions += 1
        self._stats.decision_points += 1
        expected = expected_profits(session.decision_state(stage), self.offers, self.margin)
        self._oracle.put(truth_record(ev, session.shopper.segment, expected))

    def _continue(self, session: Session, floor_ts: int) -> None:
        if session.advance(floor_ts):
            self._push(session.pending["ts"], session)
        else:
            self._stats.finished_sessions += 1

    # -- closed loop ----------------------------------------------------------------------------------

    def respond(self, event_id: str, offer: str | None, decision_id: str | None = None) -> None:
        """The offer (a name, or None for no offer) shown at decision-eligible ``event_id``; unblocks it.

        Unknown or already answered ids are ignored; an offer name not in the catalogue is a ValueError.
        """
        if offer is not None and offer not in self._by_name:
            raise ValueError(f"unknown offer {offer!r}; known: {', '.join(self._by_name)}")
        entry = self._awaiting.pop(event_id, None)
        if entry is None:
            return
        session, stage = entry
        if offer is not None:
            session.see_offer(self._by_name[offer], stage, decision_id)
            self._stats.offers_shown[offer] += 1
        self._continue(session, self._last_ts)

    def awaiting_response(self, event_id: str) -> bool:
        """Whether ``event_id`` blocks its session until ``respond`` is called for it."""
        return event_id in self._awaiting

    def blocked_count(self) -> int:
        return len(self._awaiting)

    def blocked_ids(self) -> list[str]:
        """Event ids awaiting ``respond``, oldest first (a driver may answer None to give up on them)."""
        return list(self._awaiting)

    def done(self) -> bool:
        """True when the horizon is over and no session waits for a response."""
        return not self._heap and not self._awaiting

    # -- ground truth ---------------------------------------------------------------------------------

    def expected_profit(self, event_id: str) -> dict[str, float] | None:
        """Expected reward of each offer at decision-eligible ``event_id`` (None for other events)."""
        rec = self._oracle.get(event_id)
        return dict(rec["expected_profit"]) if rec is not None else None

    def truth_record(self, event_id: str) -> dict[str, Any] | None:
        rec = self._oracle.get(event_id)
        if rec is None:
            return None
        return {**rec, "expected_profit": dict(rec["expected_profit"])}

    def stats(self) -> dict[str, Any]:
        out = self._stats.as_dict()
        out.update(
            scenario=self.scenario.name,
            seed=self.seed,
            users=self.users,
            days=self.days,
            margin=self.margin,
            closed_loop=self.closed_loop,
            blocked=len(self._awaiting),
            last_ts=self._last_ts,
        )
        return out
