"""The state stage's settings: what makes a session, when state is forgotten, where decisions are asked for.

They are read from the ``processing`` section (the engine's :class:`~stream.engine.settings.ProcessingSettings`
extends them), so settings files and ``OFFERSTREAM_PROCESSING__*`` variables name them as before.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stream.core.contract import EVENT_TYPES

log = logging.getLogger(__name__)


class SessionSettings(BaseModel):
    """What :class:`~models.behaviour.tracker.StateTracker` needs: sessions, decision points, forgetting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_events: tuple[str, ...] = Field(
        ("add_to_cart", "checkout_start"), description="event types at which an offer is decided"
    )
    max_decisions_per_session: int = Field(
        1, ge=1, description="decisions at most per session (later decision points get none)"
    )
    session_gap_s: float = Field(1800.0, gt=0, description="inactivity that starts a new session (no session_id)")
    session_ttl_s: float = Field(
        4 * 3600.0, gt=0, description="a session without session_end closes this long after its last event (event time)"
    )
    user_ttl_s: float = Field(
        180 * 86400.0, gt=0, description="a user with no event for this long (event time) is forgotten"
    )

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, data: Any) -> Any:
        """Settings files written for an earlier version still load; a retired key is dropped with a warning."""
        if isinstance(data, dict) and "partition_idle_records" in data:
            log.warning(
                "processing.partition_idle_records is no longer used (each input partition keeps its own event "
                "time, so a lagging partition never holds another's sessions); remove it from your settings"
            )
            data = {k: v for k, v in data.items() if k != "partition_idle_records"}
        return data

    @field_validator("decision_events")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        return value
