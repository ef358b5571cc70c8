"""Reward attribution edge cases, through the processing core (the way the worker sees them)."""

from factories import MINUTE, T0, event, processor, records

from stream.core.records import OutputKind


def run(events, **overrides):
    core = processor(**overrides)
    outs = [o for r in records(events) for o in core.process(r)]
    return (
        core,
        [o.body for o in outs if o.kind is OutputKind.DECISION],
        [o.body for o in outs if o.kind is OutputKind.REWARD],
    )


def test_purchase_inside_the_window_earns_margin_minus_offer_cost():
    core, decisions, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=50.0),
            event("e2", "purchase", ts=T0 + 5 * MINUTE, revenue=100.0),
        ]
    )
    (d,) = decisions
    (r,) = rewards
    offer = core.settings.offers[d["offer"]]
    assert r["decision_id"] == d["decision_id"] and r["purchased"] and r["attribution"] == "session"
    assert r["reward"] == round(0.30 * 100.0 - offer.cost(100.0), 6)


def test_purchase_after_the_window_earns_zero_and_is_not_attributed():
    _, decisions, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=50.0),
            event("e2", "purchase", ts=T0 + 31 * MINUTE, revenue=100.0),
        ]
    )
    assert len(decisions) == 1
    (r,) = rewards
    assert r["purchased"] is False and r["reward"] == 0.0 and r["attribution"] == "window_closed"
    assert r["ts_ms"] == T0 + 30 * MINUTE  # closed at its deadline, in event time


def test_purchase_exactly_at_the_deadline_still_counts():
    _, _, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=50.0),
            event("e2", "purchase", ts=T0 + 30 * MINUTE, revenue=80.0),
        ]
    )
    (r,) = rewards
    assert r["purchased"]


def test_purchase_in_another_session_without_decision_id_does_not_join():
    _, _, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, session="s1", price=50.0),
            event("e2", "purchase", ts=T0 + 5 * MINUTE, session="s2", revenue=100.0),
            event("e3", "page_view", ts=T0 + 40 * MINUTE, session="s3"),
        ]
    )
    (r,) = rewards
    assert r["purchased"] is False and r["attribution"] == "window_closed"


def test_purchase_in_another_session_naming_the_decision_joins_it():
    _, decisions, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, session="s1", price=50.0),
            event("e2", "purchase", ts=T0 + 5 * MINUTE, session="s2", revenue=100.0, decision_id="PLACEHOLDER"),
        ]
    )
    assert rewards == []  # the placeholder id names nothing, and s2 has no decision
    did = decisions[0]["decision_id"]
    _, _, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, session="s1", price=50.0),
            event("e2", "purchase", ts=T0 + 5 * MINUTE, session="s2", revenue=100.0, decision_id=did),
        ]
    )
    (r,) = rewards
    assert r["decision_id"] == did and r["attribution"] == "decision_id" and r["purchased"]


def test_two_decisions_in_a_session_the_purchase_goes_to_the_latest_and_the_other_expires():
    _, decisions, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=20.0),
            event("e2", "checkout_start", ts=T0 + 2 * MINUTE),
            event("e3", "purchase", ts=T0 + 3 * MINUTE, revenue=20.0),
            event("e4", "page_view", ts=T0 + 60 * MINUTE, session="other"),
        ],
        processing={"max_decisions_per_session": 2},
    )
    first, second = decisions
    by_id = {r["decision_id"]: r for r in rewards}
    assert by_id[second["decision_id"]]["purchased"] is True
    assert by_id[first["decision_id"]]["purchased"] is False
    assert by_id[first["decision_id"]]["attribution"] == "window_closed"


def test_a_purchase_pays_only_once():
    _, _, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=20.0),
            event("e2", "purchase", ts=T0 + 3 * MINUTE, revenue=20.0),
            event("e3", "purchase", ts=T0 + 4 * MINUTE, revenue=20.0),
        ]
    )
    assert len(rewards) == 1


def test_revenue_falls_back_to_the_session_cart():
    _, _, rewards = run(
        [
            event("e1", "add_to_cart", ts=T0, price=20.0, quantity=2),
            event("e2", "purchase", ts=T0 + 3 * MINUTE),
        ]
    )
    (r,) = rewards
    assert r["revenue"] == 40.0


def test_pending_decisions_survive_snapshot_and_restore():
    core, _, _ = run([event("e1", "add_to_cart", ts=T0, price=20.0)])
    assert core.open_decisions == 1
    twin = processor()
    twin.restore(core.snapshot())
    (r,) = [
        o.body for rec in records([event("e2", "purchase", ts=T0 + MINUTE, revenue=20.0)]) for o in twin.process(rec)
    ]
    assert r["purchased"] and twin.open_decisions == 0
