"""Hostile input at the processing core: every message gets exactly one fate, the one it is owed, and nothing
crashes. ``OFFERSTREAM_FUZZ_MESSAGES`` sets the corpus size (CI: 10,000; ``make fuzz``: 100,000); Hypothesis
adds generated adversarial messages."""

from __future__ import annotations

import json
import os
from collections import Counter

import orjson
from factories import records, settings
from hostile import hostile_corpus
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bandits.factory import make_policy
from stream.core.records import OutputKind
from stream.engine.processor import Processor

FUZZ_MESSAGES = int(os.environ.get("OFFERSTREAM_FUZZ_MESSAGES", "10000"))


def _processor() -> Processor:
    s = settings()
    return Processor(s.processing, make_policy(s.policy), seed=s.seed, archive_events=True)


def fates(processor: Processor, messages: list[bytes], batch: int = 500) -> list[str]:
    """What became of each message: "valid" (archived as an event) or its dead-letter reason."""
    got: list[str | None] = [None] * len(messages)
    recs = records(messages)
    for start in range(0, len(recs), batch):
        for out in processor.process_batch(recs[start : start + batch]):
            if out.kind is OutputKind.DEAD_LETTER:
                offset = out.body["offset"]
                assert got[offset] is None, f"message {offset} has two fates"
                got[offset] = out.body["reason"]
    n_events = processor.counters["events"]
    missing = [i for i, f in enumerate(got) if f is None]
    assert len(missing) == n_events, "every message not dead-lettered must be processed as an event"
    for i in missing:
        got[i] = "valid"
    return [g for g in got if g is not None]


def test_a_hostile_stream_gives_every_message_the_fate_it_is_owed():
    messages, owed = hostile_corpus(FUZZ_MESSAGES, seed=17)
    got = fates(_processor(), messages)
    wrong = [(i, o, g) for i, (o, g) in enumerate(zip(owed, got, strict=True)) if o != "any" and o != g]
    assert not wrong, f"{len(wrong)} messages met the wrong fate, first {wrong[:5]}"
    assert "processing_error" not in got  # a bug caught and dead-lettered is still a bug
    counts = Counter(owed)
    assert counts["valid"] > FUZZ_MESSAGES / 2 and counts["duplicate"] > FUZZ_MESSAGES / 50
    assert len(set(counts)) == 9


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
field_values = st.one_of(json_values, st.integers(-(2**70), 2**70), st.text(min_size=0, max_size=300))
base = {"event_id": "e", "ts": 1_767_600_000_000, "user_id": "u", "type": "add_to_cart", "session_id": "s"}
messages = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda v: _json(v)),
    st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "ts",
                "user_id",
                "type",
                "session_id",
                "price",
                "quantity",
                "cart_value",
                "revenue",
                "device",
                "referrer",
                "decision_id",
                "product_id",
            ]
        ),
        field_values,
    ).map(lambda d: _dump(base, d)),
)


def _json(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits: written as JSON text all the same
        return json.dumps(value).encode()


def _dump(base: dict, d: dict) -> bytes:
    return _json({**base, **d})


@hsettings(
    max_examples=int(os.environ.get("OFFERSTREAM_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(messages, min_size=1, max_size=40))
def test_generated_messages_never_crash_and_each_gets_one_fate(batch):
    processor = _processor()
    got = fates(processor, batch, batch=7)
    assert len(got) == len(batch) and "processing_error" not in got
