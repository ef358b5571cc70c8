"""A hostile clickstream: valid simulated events mixed with malformed, oversized, mistyped, duplicated,
out-of-order and adversarial messages, each labelled with the fate the worker owes it.

``hostile_corpus(n, seed)`` returns ``n`` messages (bytes) and, for each, what must happen: ``"valid"`` (processed
as an event), a dead-letter reason (``"duplicate"``, ``"invalid_json"``, ...), or ``"any"`` (adversarial but
possibly valid: processed or dead-lettered, never a crash). Every choice flows from ``seed``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import orjson

from stream.simulator import Simulation

MAX_MESSAGE_BYTES = 65_536  # processing.max_message_bytes default
REPEAT_WITHIN_MS = 300_000  # half of processing.dedup_window_s's default: out-of-order events stay inside it

Mutation = Callable[[random.Random, dict], tuple[bytes, str]]


def _valid_events(n: int, seed: int) -> list[dict]:
    sim = Simulation(scenario="stationary", days=1, users=max(300, n // 3), seed=seed)
    out = []
    while len(out) < n and (ev := sim.next_event()) is not None:
        out.append(ev)
    return out


def _dumps(d: object) -> bytes:
    return orjson.dumps(d)


def _garbage_bytes(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
    try:
        raw.decode("utf-8")
        orjson.loads(raw)
        return raw, "any"
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return raw, "any"  # not UTF-8 or not JSON: either reason is right


def _truncated(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    raw = _dumps(ev)
    return raw[: rng.randint(1, len(raw) - 1)], "invalid_json"


def _not_an_object(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    return _dumps(rng.choice([[ev], ev["event_id"], 42, None, True, [], 1.5])), "not_an_object"


def _missing_field(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    del d[rng.choice(["event_id", "ts", "user_id", "type"])]
    return _dumps(d), "contract_violation"


def _mistyped(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    field, value = rng.choice(
        [
            ("user_id", 12345),
            ("user_id", ["u"]),
            ("event_id", {"id": 1}),
            ("type", "teleport"),
            ("type", 7),
            ("ts", True),
            ("ts", "yesterday"),
            ("ts", {"ms": 1}),
            ("price", "cheap"),
            ("quantity", "two"),
        ]
    )
    d[field] = value
    return _dumps(d), "contract_violation"


def _absurd(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    field, value = rng.choice(
        [
            ("price", -1.0),
            ("price", 1e12),
            ("quantity", -3),
            ("quantity", 10**9),
            ("cart_value", -0.01),
            ("revenue", 1e15),
        ]
    )
    d[field] = value
    return _dumps(d), "absurd_value"


def _bad_time(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    d["ts"] = rng.choice([0, 1, -5, 4_102_444_800_001, "1970-01-01T00:00:00Z", "2300-01-01T00:00:00+00:00"])
    return _dumps(d), "timestamp_out_of_range"


def _oversized(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    d["padding"] = "x" * (MAX_MESSAGE_BYTES + rng.randint(1, 5000))
    return _dumps(d), "oversized"


def _adversarial(rng: random.Random, ev: dict) -> tuple[bytes, str]:
    d = dict(ev)
    kind = rng.randrange(6)
    if kind == 0:  # deep nesting in an ignored field
        nested: object = 1
        for _ in range(rng.randint(50, 900)):
            nested = [nested]
        d["extra"] = nested
        return json.dumps(d).encode(), "any"  # deeper than orjson writes (or reads: then invalid_json)
    elif kind == 1:
        d["category"] = "".join(chr(rng.choice([0, 0x202E, 0xFEFF, 0x1F600, 0x7F, 0xD7FF])) for _ in range(20))
    elif kind == 2:
        d["__proto__"] = {"polluted": True}
        d["constructor"] = "x"
    elif kind == 3:
        d["ts"] = str(d["ts"])  # epoch milliseconds as text
    elif kind == 4:
        d["event_id"] = "e" + "\u0000" * 3 + str(rng.random())
    else:
        d["price"] = rng.choice([0.0, 1e-300, 999_999.99])
    return _dumps(d), "any"


MUTATIONS: tuple[Mutation, ...] = (
    _garbage_bytes,
    _truncated,
    _not_an_object,
    _missing_field,
    _mistyped,
    _absurd,
    _bad_time,
    _oversized,
    _adversarial,
)


def hostile_corpus(n: int, seed: int, bad_share: float = 0.4) -> tuple[list[bytes], list[str]]:
    """``n`` messages and their owed fates. A bad message is a mutation of a valid event, an exact duplicate
    of an earlier valid one (``"duplicate"``), or a valid event moved a little out of order (``"valid"``)."""
    rng = random.Random(seed)
    events = _valid_events(n, seed)
    messages: list[bytes] = []
    fates: list[str] = []
    sent: list[bytes] = []
    i = 0
    while len(messages) < n:
        if rng.random() >= bad_share or not sent:
            if i >= len(events):
                events += _valid_events(n, seed + len(events))
            raw = _dumps(events[i])
            i += 1
            if fates and fates[-1] == "valid" and rng.random() < 0.05:  # out of order: swap with the one before
                messages.insert(len(messages) - 1, raw)
                fates.insert(len(fates) - 1, "valid")
                sent.append(raw)
                continue
            messages.append(raw)
            fates.append("valid")
            sent.append(raw)
            continue
        if rng.random() < 0.2:
            # a repeat of a recent event, well inside the dedup window (measured from the newest event time)
            newest = max(orjson.loads(m)["ts"] for m in sent[-20:])
            recent = [m for m in sent[-20:] if orjson.loads(m)["ts"] >= newest - REPEAT_WITHIN_MS]
            messages.append(rng.choice(recent))
            fates.append("duplicate")
            continue
        mutation = rng.choice(MUTATIONS)
        raw, fate = mutation(rng, orjson.loads(rng.choice(sent[-50:])))
        messages.append(raw)
        fates.append(fate)
    return messages, fates
