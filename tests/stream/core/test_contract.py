import contextlib

import orjson
import pytest
from factories import event
from hypothesis import given
from hypothesis import strategies as st

from stream.core.contract import EVENT_TYPES, event_to_dict, parse_event
from stream.core.errors import DeadLetterReason, InvalidMessage


def reason_of(raw: bytes) -> DeadLetterReason:
    with pytest.raises(InvalidMessage) as info:
        parse_event(raw)
    return info.value.reason


def test_minimal_event_parses_with_epoch_ms_and_iso_times():
    a = parse_event(orjson.dumps(event("e1", "page_view", ts=1_767_600_000_000)))
    b = parse_event(orjson.dumps(event("e1", "page_view", ts="2026-01-05T09:00:00+01:00")))
    assert a.ts_ms == b.ts_ms == 1_767_600_000_000


def test_unknown_fields_are_tolerated_and_optional_fields_kept():
    ev = parse_event(orjson.dumps(event("e1", "purchase", revenue=12.5, decision_id="d-1", utm_campaign="x")))
    assert ev.revenue == 12.5 and ev.decision_id == "d-1"
    assert "utm_campaign" not in event_to_dict(ev)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", DeadLetterReason.INVALID_JSON),
        (b"\xff\xfe\x00", DeadLetterReason.INVALID_JSON),
        (b"[1, 2]", DeadLetterReason.NOT_AN_OBJECT),
        (b"{}", DeadLetterReason.CONTRACT_VIOLATION),
        (orjson.dumps(event("e", "teleport")), DeadLetterReason.CONTRACT_VIOLATION),
        (
            orjson.dumps(event("e", "page_view", ts="2026-01-05T09:00:00")),
            DeadLetterReason.CONTRACT_VIOLATION,
        ),
        (orjson.dumps(event("e", "page_view", ts=True)), DeadLetterReason.CONTRACT_VIOLATION),
        (orjson.dumps(event("e", "page_view", price="cheap")), DeadLetterReason.CONTRACT_VIOLATION),
        (orjson.dumps(event("e", "add_to_cart", price=-1)), DeadLetterReason.ABSURD_VALUE),
        (orjson.dumps(event("e", "purchase", revenue=1e12)), DeadLetterReason.ABSURD_VALUE),
        (orjson.dumps(event("e", "add_to_cart", quantity=-2)), DeadLetterReason.ABSURD_VALUE),
        (orjson.dumps(event("e" * 1000, "page_view")), DeadLetterReason.ABSURD_VALUE),
        (
            b'{"event_id":"e","ts":1,"user_id":"u","type":"page_view","price":NaN}',
            DeadLetterReason.ABSURD_VALUE,
        ),
    ],
)
def test_bad_messages_get_the_right_reason(raw, reason):
    assert reason_of(raw) is reason


def test_reason_detail_names_the_field():
    with pytest.raises(InvalidMessage) as info:
        parse_event(orjson.dumps(event("e", "add_to_cart", price=-1)))
    assert "price" in info.value.detail


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_invalid_message(raw):
    with contextlib.suppress(InvalidMessage):
        parse_event(raw)


@given(
    st.sampled_from(EVENT_TYPES),
    st.integers(min_value=0, max_value=4_102_444_800_000),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_valid_events_round_trip(kind, ts, price):
    ev = parse_event(orjson.dumps(event("e1", kind, ts=ts, price=price)))
    assert parse_event(orjson.dumps(event_to_dict(ev))) == ev
