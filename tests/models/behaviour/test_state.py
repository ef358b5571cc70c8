"""The state store's snapshot copies what ``dataclasses.asdict`` would, without its generic deep copy."""

from __future__ import annotations

import dataclasses
import math

import orjson
from factories import settings, simulated_events

from models.behaviour.state import session_dict, user_dict
from models.behaviour.tracker import StateTracker
from stream.core.contract import parse_event


def _nan_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def _check_session(session) -> None:
    data = session_dict(session)
    assert _nan_safe(data) == _nan_safe(dataclasses.asdict(session))
    data["counts"]["page_view"] = -1
    assert session.counts.get("page_view") != -1  # a copy, not the live dict
    if session.decision_features is not None:
        assert data["decision_features"] is not session.decision_features


def test_user_and_session_dicts_equal_asdict_and_are_copies():
    tracker = StateTracker(settings().processing)
    seen: dict[str, None] = {}
    with_features = 0
    for i, raw in enumerate(simulated_events("stationary", days=2, users=400, seed=2)):
        tracker.apply(parse_event(orjson.dumps(raw)))
        seen[raw["user_id"]] = None
        if i % 20 == 0:  # sessions at every stage, some holding their decision point's features
            for session in tracker.store.open_sessions():
                _check_session(session)
                with_features += session.decision_features is not None
    users = [u for u in map(tracker.store.get_user, seen) if u is not None]
    assert len(users) > 50 and with_features > 10
    for user in users:
        data = user_dict(user)
        assert data == dataclasses.asdict(user)
        data["decayed"][0] += 1.0
        assert data["decayed"] != user.decayed  # a copy, not the live list
