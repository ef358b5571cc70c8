"""The memory bench measures what it says: users' state built, sessions closed, the core's holdings counted."""

from __future__ import annotations

from bench.memory import million_in_child, users_alone


def test_users_alone_cost_less_once_their_sessions_closed():
    got = users_alone(3000)
    assert got["users"] == 3000
    # a closed session's features are gone; a user's own state (ids, counts, rolling windows) is not nothing
    assert 300 < got["bytes_per_user_session_closed"] < got["bytes_per_user_session_open"]


def test_the_million_run_holds_every_user_and_closes_old_sessions():
    # in a fresh process, as the bench runs it: in this one, the users may fit in memory earlier tests freed
    got = million_in_child(20_000)  # 20,000 s of event time: sessions older than the 4-hour TTL are closed
    assert got["users"] == 20_000
    assert 0 < got["open_sessions"] < 20_000
    assert got["rss_mb_after"] > got["rss_mb_before"] and got["peak_rss_mb"] > got["rss_mb_before"]
    assert got["rss_bytes_per_user"] > 300  # the state is held: no less than a closed-session user costs alone
