"""The clickstream event contract: one JSON object per message, keyed by ``user_id``.

Validation is pydantic's: the model below *is* the contract. Unknown fields are tolerated (ignored), money
and counts must be finite and within sane bounds, and ``ts`` is either ISO-8601 with an offset or epoch
milliseconds. A message that fails becomes an :class:`~stream.core.errors.InvalidMessage` with the dead-letter
reason a dashboard can count.

>>> ev = parse_event(b'{"event_id":"e1","ts":"2026-01-05T10:00:00+01:00","user_id":"u1","type":"page_view"}')
>>> ev.ts_ms, ev.type
(1767603600000, 'page_view')
>>> parse_event(b'{"event_id":"e1","ts":1,"user_id":"u1","type":"purchase","price":-3}')
Traceback (most recent call last):
...
stream.core.errors.InvalidMessage: absurd_value: price: Input should be greater than or equal to 0
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from stream.core.errors import DeadLetterReason, InvalidMessage

EventType = Literal[
    "session_start",
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
    "session_end",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

# The referrer channels features one-hot encode (an event's ``referrer`` may name others: they encode as none).
REFERRER_CHANNELS: tuple[str, ...] = ("direct", "search", "email", "social", "ads")
MAX_MONEY = 10_000_000.0
MAX_PRICE = 1_000_000.0
MAX_QUANTITY = 10_000


def _to_epoch_ms(value: Any) -> Any:
    """Accept epoch milliseconds (an integer, not a bool) or ISO-8601 text that names its offset."""
    if isinstance(value, bool):
        raise ValueError("ts must be ISO-8601 text or epoch milliseconds, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"ts is not ISO-8601: {value[:40]!r}") from exc
        if dt.tzinfo is None:
            raise ValueError("ts has no UTC offset; naive times are ambiguous")
        return int(dt.timestamp() * 1000)
    raise ValueError("ts must be ISO-8601 text or epoch milliseconds")


EpochMs = Annotated[int, BeforeValidator(_to_epoch_ms)]
Id = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(max_length=256)]


class Event(BaseModel):
    """One clickstream event. ``ts_ms`` holds ``ts`` normalised to epoch milliseconds (UTC)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, populate_by_name=True)

    event_id: Id
    ts_ms: EpochMs = Field(alias="ts")
    user_id: Id
    type: EventType
    session_id: Id | None = None
    product_id: Label | None = None
    category: Label | None = None
    price: float | None = Field(None, ge=0, le=MAX_PRICE)
    quantity: int | None = Field(None, ge=0, le=MAX_QUANTITY)
    cart_value: float | None = Field(None, ge=0, le=MAX_MONEY)
    revenue: float | None = Field(None, ge=0, le=MAX_MONEY)
    device: Label | None = None
    referrer: Label | None = None
    decision_id: Id | None = None


# pydantic error types that mean "well-formed but absurd" rather than "not our contract".
_ABSURD_ERRORS = frozenset(
    {"greater_than_equal", "greater_than", "less_than_equal", "less_than", "finite_number", "string_too_long"}
)


def _reason_for(exc: ValidationError) -> InvalidMessage:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
    if "json_invalid" in kinds:
        reason = DeadLetterReason.INVALID_JSON
    elif any(e["type"] == "model_type" and not e["loc"] for e in errors):
        reason = DeadLetterReason.NOT_AN_OBJECT
    elif kinds <= _ABSURD_ERRORS:
        reason = DeadLetterReason.ABSURD_VALUE
    else:
        reason = DeadLetterReason.CONTRACT_VIOLATION
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<message>'}: {e['msg']}" for e in errors)
    return InvalidMessage(reason, detail[:500])


def parse_event(raw: bytes) -> Event:
    """Parse and validate one message; raises :class:`InvalidMessage` with a dead-letter reason."""
    try:
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        raise _reason_for(exc) from None


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as contract JSON (``ts`` in epoch milliseconds), without unset optional fields."""
    return event.model_dump(by_alias=True, exclude_none=True)
