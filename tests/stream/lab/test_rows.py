"""The lab's rows: labels known only when they could be, for sessions and for purchase-only histories."""

from __future__ import annotations

import numpy as np
import pytest
from factories import T0, event

from stream.app.settings import load_settings
from stream.lab.rows import collect_rows

DAY = 86_400_000


def purchase(i: int, user: str, day: float) -> dict:
    return event(f"p{i}", "purchase", ts=T0 + int(day * DAY), user=user, session=None, revenue=20.0)


def test_repurchase_label_is_a_later_purchase_within_the_horizon_known_only_after_it():
    events = [
        purchase(1, "a", 0), purchase(2, "b", 0), purchase(3, "a", 10), purchase(4, "a", 50), purchase(5, "c", 60),
    ]  # fmt: skip
    rows = collect_rows(events, load_settings(env={}).processing, repurchase_days=30)
    got = {
        (sid.split(":")[0], int((d - T0) // DAY)): y
        for sid, d, y in zip(rows.session_ids, rows.decision_ms, rows.y, strict=True)
    }
    # a@0 buys again on day 10; a@10 not before day 50; b never; a@50 and c@60 are too recent to know
    assert got == {("a", 0): 1.0, ("b", 0): 0.0, ("a", 10): 0.0}
    assert rows.unlabelled == 2
    np.testing.assert_array_equal(rows.closed_ms, rows.decision_ms + 30 * DAY)
    a10 = [i for i, sid in enumerate(rows.session_ids) if sid.startswith("a:") and rows.decision_ms[i] == T0 + 10 * DAY]
    assert rows.features(a10[0])["purchases_total"] == 2.0, "features at the purchase count the user's history"


def test_repurchase_horizon_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        collect_rows([], load_settings(env={}).processing, repurchase_days=0)


def test_session_rows_are_labelled_when_the_session_closes():
    events = [
        event("e1", "add_to_cart", ts=T0, user="u", session="s1", price=10.0),
        event("e2", "purchase", ts=T0 + 60_000, user="u", session="s1", revenue=10.0),
        event("e3", "session_end", ts=T0 + 120_000, user="u", session="s1"),
        event("e4", "add_to_cart", ts=T0 + 200_000, user="v", session="s2", price=5.0),
    ]
    rows = collect_rows(events, load_settings(env={}).processing)
    assert rows.session_ids == ("s1",) and rows.y.tolist() == [1.0]
    assert rows.decision_ms.tolist() == [T0] and rows.closed_ms.tolist() == [T0 + 120_000]
    assert rows.unlabelled == 1  # s2 reached a decision point and is still open
