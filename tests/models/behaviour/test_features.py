"""The behaviour features' shortcuts give exactly what the full computation gives."""

from __future__ import annotations

import orjson
from factories import settings, simulated_events

from models.behaviour.features import behaviour_features, user_vector, user_vector_at
from models.behaviour.tracker import StateTracker
from stream.core.contract import parse_event


def test_user_vector_at_equals_the_vector_of_the_full_features():
    """At every event of a simulated week (sessions at every stage, buyers and not, devices), for its session."""
    tracker = StateTracker(settings().processing)
    compared = 0
    for raw in simulated_events("stationary", days=7, users=300, seed=5):
        event = parse_event(orjson.dumps(raw))
        tracked = tracker.apply(event)
        session = tracker.store.get_session(tracked.session_id)
        if session is None:  # closed by this event (session_end)
            continue
        user = tracker.store.get_user(event.user_id)
        assert user is not None
        fast = user_vector_at(session, user, event.ts_ms)
        full = user_vector(behaviour_features(session, user, event.ts_ms))
        assert list(fast.items()) == list(full.items())  # same keys, same order, same floats
        compared += 1
    assert compared > 5_000
