import orjson
from factories import MINUTE, T0, event, processor, records

from stream.core.records import OutputKind, SourceRecord
from stream.engine.stage_clock import StageClock


def outputs(core, events, start: int = 0):
    return [o for r in records(events, start=start) for o in core.process(r)]


def test_at_most_one_decision_per_session_by_default_at_cart_and_checkout():
    core = processor()
    outs = outputs(
        core,
        [
            event("e1", "session_start", ts=T0),
            event("e2", "product_view", ts=T0 + 1000, price=10.0),
            event("e3", "add_to_cart", ts=T0 + 2000, price=10.0),
            event("e4", "checkout_start", ts=T0 + 3000),
            event("e5", "checkout_start", ts=T0 + 4000, session="s2"),
        ],
    )
    decisions = [o.body for o in outs if o.kind is OutputKind.DECISION]
    assert [d["event_id"] for d in decisions] == ["e3", "e5"]
    for d in decisions:
        assert 0 < d["propensity"] <= 1
        assert abs(sum(d["propensities"].values()) - 1) < 1e-9
        assert d["propensities"][d["offer"]] == d["propensity"]
        assert set(d["propensities"]) == {"none", "discount_5", "discount_10", "discount_15", "free_shipping"}
        assert d["model_versions"]["features"] and d["policy"] == "linear_thompson"


def test_decision_events_and_count_are_configurable():
    core = processor(processing={"decision_events": ["checkout_start"], "max_decisions_per_session": 2})
    outs = outputs(
        core,
        [
            event("e1", "add_to_cart", ts=T0, price=5.0),
            event("e2", "checkout_start", ts=T0 + 1),
            event("e3", "checkout_start", ts=T0 + 2),
            event("e4", "checkout_start", ts=T0 + 3),
        ],
    )
    assert [o.body["event_id"] for o in outs if o.kind is OutputKind.DECISION] == ["e2", "e3"]


def test_decision_ids_are_deterministic_from_the_event():
    a = outputs(processor(seed=1), [event("e9", "add_to_cart", ts=T0, price=1.0)])
    b = outputs(processor(seed=2), [event("e9", "add_to_cart", ts=T0, price=1.0)])
    assert a[0].body["decision_id"] == b[0].body["decision_id"]


def test_sessions_are_inferred_by_inactivity_when_events_name_none():
    core = processor()
    outs = outputs(
        core,
        [
            event("e1", "add_to_cart", ts=T0, session=None, price=1.0),
            event("e2", "checkout_start", ts=T0 + 10 * MINUTE, session=None),
            event("e3", "add_to_cart", ts=T0 + 60 * MINUTE, session=None, price=1.0),
        ],
    )
    decisions = [o.body for o in outs if o.kind is OutputKind.DECISION]
    assert [d["event_id"] for d in decisions] == ["e1", "e3"]
    assert decisions[0]["session_id"] != decisions[1]["session_id"]


def test_bad_input_is_dead_lettered_with_source_and_bytes_and_good_input_around_it_goes_on():
    core = processor(processing={"max_message_bytes": 1024})
    raw_bad = [b"{nope", b"[]", orjson.dumps(event("x", "add_to_cart", price=-5)), b"{" + b" " * 2000 + b"}"]
    good = [
        event("g1", "add_to_cart", ts=T0, session="a", price=1.0),
        event("g2", "add_to_cart", ts=T0, session="b", price=1.0),
    ]
    stream = [good[0], *raw_bad, good[1]]
    recs = records(stream, topic="clicks", partition=2)
    outs = [o for r in recs for o in core.process(r)]
    dead = [o for o in outs if o.kind is OutputKind.DEAD_LETTER]
    assert [d.body["reason"] for d in dead] == ["invalid_json", "not_an_object", "absurd_value", "oversized"]
    import base64

    for d, rec in zip(dead, recs[1:5], strict=True):
        assert base64.b64decode(d.body["value_b64"]) == rec.value
        assert (d.body["topic"], d.body["partition"], d.body["offset"]) == ("clicks", 2, rec.offset)
        assert d.body["detail"]
        assert dict(d.headers)["offerstream.reason"] == d.body["reason"].encode()
    assert [o.body["event_id"] for o in outs if o.kind is OutputKind.DECISION] == ["g1", "g2"]


def test_timestamps_decades_from_the_record_time_are_dead_letters():
    core = processor()
    good = orjson.dumps(event("e1", "page_view", ts=T0))
    far = orjson.dumps(event("e2", "page_view", ts=T0 + 30 * 365 * 86_400_000))
    ancient = orjson.dumps(event("e3", "page_view", ts=0))
    out = [core.process(SourceRecord(v, "t", 0, i, timestamp_ms=T0)) for i, v in enumerate([good, far, ancient])]
    assert out[0] == []
    assert out[1][0].body["reason"] == "timestamp_out_of_range" and "broker time" in out[1][0].body["detail"]
    assert out[2][0].body["reason"] == "timestamp_out_of_range"


def test_without_record_time_the_watermark_is_the_reference():
    core = processor()
    outs = outputs(core, [event("e1", "page_view", ts=T0), event("e2", "page_view", ts=T0 + 40 * 365 * 86_400_000)])
    assert outs[0].body["reason"] == "timestamp_out_of_range" and "watermark" in outs[0].body["detail"]


def test_processing_does_not_mutate_its_input():
    core = processor()
    recs = records([event("e1", "add_to_cart", ts=T0, price=3.0)])
    before = [(r.value, r.offset) for r in recs]
    for r in recs:
        core.process(r)
    assert [(r.value, r.offset) for r in recs] == before


def test_snapshot_then_restore_continues_like_never_stopping():
    evs = [
        event(
            f"e{i}",
            kind,
            ts=T0 + i * MINUTE,
            session=f"s{i // 4}",
            user=f"u{i % 3}",
            price=10.0,
            revenue=30.0,
        )
        for i, kind in enumerate(["session_start", "add_to_cart", "purchase", "page_view"] * 10)
    ]
    whole = processor(seed=3)
    expected = [o.value() for o in outputs(whole, evs)]
    first = processor(seed=3)
    got = [o.value() for o in outputs(first, evs[:17])]
    second = processor(seed=3)
    second.restore(orjson.loads(orjson.dumps(first.snapshot())))  # through JSON, like the checkpoint
    got += [o.value() for o in outputs(second, evs[17:], start=17)]  # the input goes on where it stopped
    assert got == expected
    assert orjson.dumps(second.snapshot()) == orjson.dumps(whole.snapshot())


def test_idle_sessions_are_forgotten_after_their_ttl():
    core = processor(processing={"session_ttl_s": 3600})
    outputs(
        core,
        [
            event("e1", "page_view", ts=T0, session="old"),
            event("e2", "page_view", ts=T0 + 2 * 3600_000, session="new"),
        ],
    )
    store = core.partition(0).store
    assert store.get_session("old") is None and store.get_session("new") is not None


def test_the_stage_clock_charges_each_stage_its_own_time():
    """A policy that takes a million ticks to choose and to learn is charged to ``policy``, not to ``decide``,
    whose stage it runs inside; every stage the events went through is charged something."""
    now = [0]

    def tick() -> int:
        now[0] += 1
        return now[0]

    core = processor()
    core.clock = StageClock(now=tick)
    policy = core.policy

    class SlowPolicy:
        def __getattr__(self, name):
            return getattr(policy, name)

        def choose(self, *args):
            now[0] += 1_000_000
            return policy.choose(*args)

        def update(self, *args, **kwargs):
            now[0] += 1_000_000
            return policy.update(*args, **kwargs)

    core.policy = SlowPolicy()
    outs = outputs(
        core,
        [
            event("e1", "add_to_cart", ts=T0, price=20.0),
            event("e2", "purchase", ts=T0 + MINUTE, revenue=20.0),
            event("e3", "session_end", ts=T0 + 2 * MINUTE),
        ],
    )
    assert [o.kind for o in outs] == [OutputKind.DECISION, OutputKind.REWARD]
    ns = core.clock.ns
    assert 2_000_000 <= ns["policy"] < 2_001_000
    assert 0 < ns["decide"] < 1_000
    assert all(ns[stage] > 0 for stage in ("parse", "state", "learners"))
    assert ns["read"] == ns["write"] == 0  # the pipeline's stages: not run here
