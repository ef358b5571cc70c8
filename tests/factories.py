"""Factories for test data: events as dicts and bytes, records, settings, a processor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from bandits.factory import make_policy
from stream.app.settings import Settings, load_settings
from stream.core.records import SourceRecord
from stream.engine.processor import Processor

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
MINUTE = 60_000


def event(
    event_id: str, type: str, *, ts: int = T0, user: str = "u1", session: str | None = "s1", **extra: Any
) -> dict:
    body: dict[str, Any] = {"event_id": event_id, "ts": ts, "user_id": user, "type": type}
    if session is not None:
        body["session_id"] = session
    body.update(extra)
    return body


def records(events: Iterable[dict | bytes], topic: str = "t", partition: int = 0, start: int = 0) -> list[SourceRecord]:
    out = []
    for offset, e in enumerate(events, start):
        value = e if isinstance(e, bytes) else orjson.dumps(e)
        out.append(SourceRecord(value=value, topic=topic, partition=partition, offset=offset))
    return out


def settings(**overrides: Any) -> Settings:
    return load_settings(overrides=overrides, env={})


def processor(**overrides: Any) -> Processor:
    s = settings(**overrides)
    return Processor(s.processing, make_policy(s.policy), seed=s.seed)


def learned(core: Processor) -> dict[str, str]:
    """How many examples each learner of ``core`` learned (the versions ``name@count``: the policy's rewards, each
    River learner's examples): equal for two cores that learned the same examples, each once."""
    return {"policy": core.policy.version} | {name: learner.version for name, learner in core.learners.items()}


def simulated_events(scenario: str, days: float, users: int, seed: int) -> list[dict[str, Any]]:
    """Every event of a short open-loop simulation, in order."""
    from stream.simulator import Simulation

    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed)
    out = []
    while (ev := sim.next_event()) is not None:
        out.append(ev)
    return out
