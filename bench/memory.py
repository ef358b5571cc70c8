"""``make bench-memory``: bytes of state per user the worker holds, and peak RSS with a million users' state.

Two measurements, printed and written to ``.run/bench/memory.json``:

1. **Per user, realistic traffic** (``--days`` of the ``stationary`` scenario, ``--users`` shoppers, through
   the whole processing core, Python's ``tracemalloc`` on): the memory the core still holds at the end
   (users' and open sessions' state, the duplicate check's window of event ids, open decisions waiting for
   their reward, each user's offer history, the online learners and the policy), divided by the users it
   tracks; and, separately, what one user's own state costs (:class:`models.behaviour.state.UserState` and its
   entries) after their session closed, measured by building the same users' state alone.
2. **A million users** (a child process, so its peak RSS is its own, no ``tracemalloc``): ``--million`` users
   (default 1,000,000) arrive a second apart (11.6 days of event time, inside the 180-day user TTL) and each
   view a product and add it to the cart, through the state stage (the :class:`models.behaviour.tracker.StateTracker`
   the core uses; parsing and the policy are not what holds memory); their sessions close as the hours pass,
   as in a shop. Resident memory before and at the end (every user's state, the last hours' sessions still
   open) and the process's peak (``ru_maxrss``). Python keeps freed memory in its arenas, so RSS is an upper
   bound on what the state needs.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from bench.machine import machine, write_results
from models.behaviour.tracker import StateTracker
from stream.app.build import build_processor
from stream.app.settings import load_settings
from stream.core.contract import Event
from stream.core.records import SourceRecord
from stream.engine.settings import ProcessingSettings
from stream.simulator import simulate_to_file

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
HOUR_MS = 3_600_000


def rss_mb() -> float:
    """Resident memory of this process now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shopper_events(i: int, ts: int) -> tuple[Event, Event]:
    """One shopper's short visit: a product view and an add to cart (a decision point), a second apart."""
    user = f"u{i:07d}"
    session = f"{user}-s0"
    return (
        Event(event_id=f"{session}-1", ts_ms=ts, user_id=user, type="product_view", session_id=session,
              product_id="p1", price=25.0, device="mobile", referrer="search"),
        Event(event_id=f"{session}-2", ts_ms=ts + 1000, user_id=user, type="add_to_cart", session_id=session,
              product_id="p1", price=25.0, quantity=1),
    )  # fmt: skip


def after_sessions_close(tracker: StateTracker, processing: ProcessingSettings, last_ts: int) -> None:
    """An event far enough in event time after ``last_ts`` that every earlier session closes."""
    ttl_ms = int(max(processing.session_ttl_s, processing.session_gap_s) * 1000)
    ts = last_ts + ttl_ms + HOUR_MS
    tracker.apply(Event(event_id="clock", ts_ms=ts, user_id="clock", type="page_view", session_id="clock"))


def users_alone(n: int) -> dict[str, Any]:
    """``tracemalloc`` bytes per user of ``n`` users' state, with their session open and after it closed."""
    processing = load_settings(env={}).processing
    tracker = StateTracker(processing, user_vectors=False)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        for event in shopper_events(i, T0 + i * 10):
            tracker.apply(event)
    open_bytes = tracemalloc.get_traced_memory()[0] - base
    after_sessions_close(tracker, processing, T0 + n * 10)
    gc.collect()
    closed_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {
        "users": n,
        "bytes_per_user_session_open": round(open_bytes / n),
        "bytes_per_user_session_closed": round(closed_bytes / n),
    }


def core_after_replay(events: Path, seed: int) -> dict[str, Any]:
    """``tracemalloc`` bytes the whole core holds after replaying ``events``, and what it holds them for."""
    settings = load_settings(env={}, overrides={"seed": seed})
    lines = events.read_bytes().splitlines()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    core = build_processor(settings)
    for offset, line in enumerate(lines):
        core.process(SourceRecord(line, "bench", 0, offset))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    users = core.user_count
    [part] = core.partitions.values()  # one partition: the bench reads one
    return {
        "events": len(lines),
        "users_tracked": users,
        "open_sessions": len(part.store.open_sessions()),
        "open_decisions": core.open_decisions,
        "event_ids_in_dedup_window": len(part.recent_ids),
        "users_with_offer_history": len(part.offer_history),
        "bytes_held": held,
        "bytes_per_tracked_user": round(held / max(users, 1)),
    }


def million(n: int) -> dict[str, Any]:
    """In this process: ``n`` users through the state stage; resident memory at each step and the peak."""
    processing = load_settings(env={}).processing
    tracker = StateTracker(processing, user_vectors=False)
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    for i in range(n):
        for event in shopper_events(i, T0 + i * 1000):
            tracker.apply(event)
    gc.collect()
    after = rss_mb()
    return {
        "users": tracker.store.user_count,
        "open_sessions": len(tracker.store.open_sessions()),
        "event_days": round(n * 1000 / (24 * HOUR_MS), 1),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(after, 1),
        "rss_bytes_per_user": round((after - before) * 2**20 / n),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def million_in_child(n: int) -> dict[str, Any]:
    """:func:`million` in a fresh Python process, so its RSS and peak are its own, not this process's heap history."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", str(n)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return dict(orjson.loads(child.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4000, help="simulated shoppers for the realistic replay")
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--million", type=int, default=1_000_000, help="users whose state the child process holds")
    parser.add_argument("--alone", type=int, default=50_000, help="users measured alone with tracemalloc")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/memory.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(million(args.child)))
        return

    results: dict[str, Any] = {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="offerstream-bench-memory-") as tmp:
        events = Path(tmp) / "events.jsonl"
        sim = simulate_to_file("stationary", days=args.days, users=args.users, seed=1, out=events)
        core = core_after_replay(events, 1)
    results["core_after_replay"] = core | {"scenario": "stationary", "days": args.days, "users": args.users}
    print(
        f"core after replaying {sim['events']:,} events ({args.users:,} shoppers × {args.days:g} days, tracemalloc): "
        f"{core['bytes_held'] / 2**20:.1f} MiB held for {core['users_tracked']:,} users "
        f"({core['bytes_per_tracked_user']:,} bytes per tracked user, everything included: "
        f"{core['open_sessions']:,} open sessions, {core['open_decisions']:,} open decisions, "
        f"{core['event_ids_in_dedup_window']:,} event ids in the duplicate window, learners and policy)"
    )
    alone = users_alone(args.alone)
    results["user_state"] = alone
    print(
        f"one user's own state ({alone['users']:,} users alone, tracemalloc): "
        f"{alone['bytes_per_user_session_closed']:,} bytes after the session closed, "
        f"{alone['bytes_per_user_session_open']:,} with it open (the session keeps its first decision point's "
        f"features for the intent learner)"
    )
    big = million_in_child(args.million)
    results["million_users"] = big
    print(
        f"{big['users']:,} users through the state stage, a second apart ({big['event_days']:g} days of event "
        f"time; child process, {big['seconds']:.0f} s; {big['open_sessions']:,} sessions still open): RSS "
        f"{big['rss_mb_before']:.0f} MB before, {big['rss_mb_after']:.0f} MB after "
        f"({big['rss_bytes_per_user']:,} bytes per user); peak RSS {big['peak_rss_mb']:.0f} MB"
    )
    write_results(args.out, results)


if __name__ == "__main__":
    main()
