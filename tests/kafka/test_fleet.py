"""Several workers in one group: partitions move between them, and every partition's state moves with it.

A simulated shop's clickstream, keyed by user over four partitions, is consumed by a fleet that changes under
it: worker A starts alone, B joins mid-stream, A is killed with SIGKILL and never comes back, C joins, and B is
killed and restarted with its state directory deleted. Read ``read_committed``, the fleet's output is compared
with the same events processed in this process by one core, partition by partition:

* every decision exactly once (by ``decision_id``), at most one per session, none missing;
* every decision's behaviour features (those that depend on the events alone) equal to the reference's, so
  the users of a moved partition kept their history;
* every purchase joined to the same decision, even when its partition moved between the two;
* every partition's final state (rebuilt from its changelog) equal to the one core's, session by session;
* a worker started afterwards takes from the model topic learners that learned every reward and example once.

It runs twice: with the users in memory, and on disk (``state_store = "rocksdb"``, where a restarted worker
takes every partition back from its changelog). It also measures how long the killed worker's open transaction
held back downstream ``read_committed`` readers of the decisions topic (the broker aborts it after
``kafka.transaction_timeout_ms``).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import orjson
import pytest
from factories import learned
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.structs import TopicPartition
from kafka_helpers import committed_total, group_done, log_tail, start_worker, suffixed_topics, wait_for

from models.behaviour.features import FEATURE_NAMES
from stream.app.build import build_processor
from stream.app.settings import Settings
from stream.app.shared_learning import SharedLearning
from stream.core.records import OutputKind, SourceRecord
from stream.engine.processor import Processor
from stream.io.file_source import read_file
from stream.kafka.changelog import read_changelog
from stream.kafka.clients import ensure_topics
from stream.kafka.topic_files import iter_topic, produce_values
from stream.kafka.transactions import default_instance_id
from stream.simulator import simulate_to_file

pytestmark = pytest.mark.slow

PARTITIONS = 4
STREAM_S = 60.0  # the clickstream flows this long while workers join, die and restart
WORKER_ENV = {"OFFERSTREAM_KAFKA__MAX_POLL_RECORDS": "200", "OFFERSTREAM_METRICS_PORT": "0"}


def _fleet_settings(base: Settings, tmp_path) -> Settings:
    kafka = suffixed_topics(base.kafka, "fleet", group_id=f"{base.kafka.group_id}.fleet", partitions=PARTITIONS)
    settings = base.model_copy(update={"kafka": kafka, "state_dir": tmp_path / "unused"})
    ensure_topics(settings.kafka)
    return settings


def _reference(settings: Settings) -> tuple[list, list, Processor]:
    """The clickstream as the broker holds it, through one in-process core (every partition's own state):
    its decisions and rewards as a reader sees them, and the core."""
    core = build_processor(settings)
    outputs = []
    batch: list[SourceRecord] = []
    for m in iter_topic(settings.kafka, settings.kafka.clickstream_topic, 5.0):
        ts = m.timestamp if m.timestamp is not None and m.timestamp >= 0 else None
        batch.append(SourceRecord(m.value, m.topic, m.partition, m.offset, m.key, ts))
        if len(batch) == 500:
            outputs += core.process_batch(batch)
            batch = []
    outputs += core.process_batch(batch)
    as_read = [(o.kind, orjson.loads(o.value())) for o in outputs]  # through JSON, as a reader sees them
    decisions = [b for kind, b in as_read if kind is OutputKind.DECISION]
    return decisions, [b for kind, b in as_read if kind is OutputKind.REWARD], core


def _same(value) -> bytes:
    """A value as compared: JSON with sorted keys (NaN, a missing average, compares equal to itself)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _state_differences(settings: Settings, one_core: Processor) -> list[str]:
    """Where the fleet's partition states, rebuilt from the changelog as the last owners left them, differ from
    the one core's: each partition's clock, and its users and open sessions, named one by one."""
    core = build_processor(settings.model_copy(update={"state_store": "memory"}), keep_changes=True)
    read_changelog(settings.kafka, range(PARTITIONS), lambda p, changes: core.partition(p).apply(changes))
    out = []
    for p in range(PARTITIONS):
        state = core.partitions[p]
        got, want = state.tracker.snapshot(), one_core.partitions[p].tracker.snapshot()
        for key in sorted(set(got) - {"store"}):
            if _same(got[key]) != _same(want.get(key)):
                out.append(f"partition {p} {key}: fleet {got[key]}, one core {want.get(key)}")
        for kind, id_key in (("sessions", "session_id"), ("users", "user_id")):
            mine = {x[id_key]: x for x in got["store"][kind]}
            theirs = {x[id_key]: x for x in want["store"][kind]}
            out += [
                f"partition {p}: {kind[:-1]} {i} only in the fleet: {mine[i]}" for i in sorted(set(mine) - set(theirs))
            ]
            out += [
                f"partition {p}: {kind[:-1]} {i} only in one core: {theirs[i]}" for i in sorted(set(theirs) - set(mine))
            ]
            out += [
                f"partition {p}: {kind[:-1]} {i} differs: fleet {mine[i]}, one core {theirs[i]}"
                for i in sorted(set(mine) & set(theirs))
                if _same(mine[i]) != _same(theirs[i])
            ]
    return out


def _producer_id(admin: KafkaAdminClient, transactional_id: str) -> int | None:
    for listings in admin.list_transactions().values():
        for listing in listings:
            if listing.transactional_id == transactional_id:
                return listing.producer_id
    return None


def _holds_decisions_open(admin: KafkaAdminClient, settings: Settings, producer_id: int) -> bool:
    """Whether the producer has a transaction open on a decisions partition (records written, not committed)."""
    tps = [TopicPartition(settings.kafka.decisions_topic, p) for p in range(PARTITIONS)]
    return any(
        producer.producer_id == producer_id and producer.current_transaction_start_offset >= 0
        for state in admin.describe_producers(tps).values()
        for producer in state.active_producers
    )


def _kill_mid_transaction(worker: subprocess.Popen, settings: Settings, state_dir, tries: int = 500) -> bool:
    """SIGKILL the worker while its transaction holds decisions uncommitted: freeze it (SIGSTOP), ask the
    decisions partitions' leader whether its producer has a transaction open there, kill it if so, else let it
    run a few milliseconds and ask again. True when it died with decisions in an open transaction."""
    transactional_id = f"{settings.kafka.group_id}-{default_instance_id(str(state_dir.resolve()))}"
    admin = KafkaAdminClient(**settings.kafka.client_options())
    rng = random.Random(3)
    try:
        producer_id = wait_for(lambda: _producer_id(admin, transactional_id), what=f"{transactional_id} known")
        for _ in range(tries):
            worker.send_signal(signal.SIGSTOP)
            if _holds_decisions_open(admin, settings, producer_id):
                worker.kill()
                worker.wait(timeout=30)
                return True
            worker.send_signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.0, 0.03))
        worker.kill()
        worker.wait(timeout=30)
        return False
    finally:
        admin.close()


def _held_back_s(settings: Settings, timeout_s: float = 120.0) -> float:
    """Seconds until every decisions partition's end, as read_committed readers see it, reaches the end it had
    (read_uncommitted) now: how long an open transaction left behind holds downstream readers back."""
    topic = settings.kafka.decisions_topic
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    started = time.monotonic()
    opts = settings.kafka.client_options()
    raw = KafkaConsumer(**opts, group_id=None, isolation_level="read_uncommitted")
    committed = KafkaConsumer(**opts, group_id=None, isolation_level="read_committed")
    try:
        target = raw.end_offsets(tps)
        while time.monotonic() - started < timeout_s:
            stable = committed.end_offsets(tps)
            if all(stable[tp] >= target[tp] for tp in tps):
                return time.monotonic() - started
            time.sleep(0.1)
    finally:
        raw.close()
        committed.close()
    raise AssertionError(f"read_committed readers still held back after {timeout_s:.0f} s")


def _paced(values: list[bytes], seconds: float, stop: threading.Event):
    """The values spread evenly over ``seconds``: a stream that keeps flowing while the fleet changes."""
    started = time.monotonic()
    for i, value in enumerate(values):
        if stop.is_set():
            return
        wait = started + seconds * i / len(values) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield value


def _ready(log_path) -> Callable[[], bool]:
    """True once the worker logging to ``log_path`` runs its loop (its signal handlers are installed by then)."""
    lives = log_path.read_text().count("worker consuming") if log_path.exists() else 0

    def ready() -> bool:
        return log_path.exists() and log_path.read_text().count("worker consuming") > lives

    return ready


@pytest.mark.parametrize("state_store", ["memory", "rocksdb"])
def test_a_changing_fleet_decides_each_event_once_with_the_users_history(tmp_path, kafka_settings, state_store):
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=3, users=2_000, seed=8, out=events)
    values = [r.value for r in read_file(events)]
    settings = _fleet_settings(kafka_settings, tmp_path)
    k = settings.kafka
    n = len(values)
    logs = {name: tmp_path / f"{name}.log" for name in "abc"}
    dirs = {name: tmp_path / f"state-{name}" for name in "abc"}
    workers: dict[str, subprocess.Popen] = {}
    stop = threading.Event()
    producer = threading.Thread(
        target=produce_values, args=(k, k.clickstream_topic, _paced(values, STREAM_S, stop)), daemon=True
    )

    def start(name: str) -> None:
        ready = _ready(logs[name])
        workers[name] = start_worker(
            settings, dirs[name], logs[name], **WORKER_ENV, OFFERSTREAM_STATE_STORE=state_store
        )
        wait_for(ready, timeout=120, what=f"worker {name.upper()} running", details=log_tail(logs[name]))

    def progress(at: float, what: str) -> None:
        wait_for(lambda: committed_total(settings) >= int(n * at), timeout=300, every=0.05, what=what)

    try:
        start("a")
        producer.start()
        progress(0.15, "worker A under way")
        start("b")  # joins mid-stream
        progress(0.4, "A and B under way")
        open_at_kill = _kill_mid_transaction(workers["a"], settings, dirs["a"])  # and never restarted
        held_back = _held_back_s(settings)
        start("c")
        progress(0.6, "B and C under way")
        workers["b"].send_signal(signal.SIGKILL)
        workers["b"].wait(timeout=30)
        shutil.rmtree(dirs["b"])  # a rescheduled container without its volume
        start("b")
        producer.join(timeout=STREAM_S * 3)
        wait_for(
            lambda: group_done(settings, n),
            timeout=600,
            what="the whole stream consumed by the fleet",
            details=lambda: log_tail(logs["b"])() + log_tail(logs["c"])(),
        )
        for name in ("b", "c"):
            workers[name].send_signal(signal.SIGTERM)
            assert workers[name].wait(timeout=90) == 0, log_tail(logs[name])()
    finally:
        stop.set()
        for w in workers.values():
            if w.poll() is None:
                w.kill()
                w.wait(timeout=30)

    decisions = [orjson.loads(m.value) for m in iter_topic(k, k.decisions_topic, 5.0)]
    rewards = [orjson.loads(m.value) for m in iter_topic(k, k.rewards_topic, 5.0)]
    want_decisions, want_rewards, one_core = _reference(settings)

    ids = [d["decision_id"] for d in decisions]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} decisions made twice"
    sessions = [d["session_id"] for d in decisions]
    assert len(sessions) == len(set(sessions)), "a session got two decisions"
    got = {d["event_id"]: d for d in decisions}
    want = {d["event_id"]: d for d in want_decisions}
    assert len(want) > 200
    assert sorted(got) == sorted(want), f"{len(set(want) - set(got))} missing, {len(set(got) - set(want))} extra"
    wrong = [
        e
        for e in want
        if {f: want[e]["features"][f] for f in FEATURE_NAMES} != {f: got[e]["features"][f] for f in FEATURE_NAMES}
    ]
    assert not wrong, f"{len(wrong)} of {len(want)} decisions made with other behaviour features, e.g. {wrong[:3]}"

    def joins(rs: list[dict]) -> dict[str, str]:
        return {r["purchase_event_id"]: r["decision_id"] for r in rs if r["purchased"]}

    assert len(joins(want_rewards)) > 20
    assert joins(rewards) == joins(want_rewards)

    # One brain: a worker starting now, with nothing on disk, takes the fleet's learners from the model topic.
    # They learned every reward and example exactly once, through the kill, the lost state directory and the
    # joins (a starting worker once read past lessons committed while it read the model topic to its end, and
    # the models it wrote then claimed them: one to three sessions short, at times).
    newcomer = build_processor(settings)
    learning = SharedLearning(newcomer, lambda: build_processor(settings), k, "newcomer")
    try:
        how = learning.start(None, replayed_gap=False)
    finally:
        learning.close()
    assert "fleet's model" in how
    # every rebuilt state reached the committed offset (a changelog read before the previous owner's markers
    # landed used to miss its last batch: features unchanged, a session never closed, one example fewer learned),
    # and the last owners left every partition's state as one core has it, user by user, session by session
    behind = [line for p in logs.values() for line in p.read_text().splitlines() if "is missing" in line]
    assert not behind, behind[:3]
    differences = _state_differences(settings, one_core)
    assert not differences, f"{len(differences)} differences, e.g. {differences[:6]}"
    assert learned(newcomer) == learned(one_core)

    restored = sum(p.read_text().count("restored from") for p in logs.values())
    assert restored >= 1, "no partition state was restored from its changelog"
    # The broker aborts a dead worker's transaction after kafka.transaction_timeout_ms (10 s), found by a scan
    # that runs every 10 s by default: 10 to 20 s, where the old 60 s default took 60 to 70.
    assert open_at_kill, "worker A was never caught with its transaction open"
    assert held_back < 45.0, f"downstream readers were held back {held_back:.0f} s by the dead worker"
    print(
        f"state store {state_store}: {n} events over {PARTITIONS} partitions, {len(got)} decisions, "
        f"{len(joins(rewards))} purchases joined; learners from the model topic: {learned(newcomer)}; "
        f"{restored} partition states restored from the changelog; killed A with its transaction "
        f"{'open' if open_at_kill else 'never seen open'}: downstream read_committed readers held back "
        f"{held_back:.1f} s (kafka.transaction_timeout_ms={k.transaction_timeout_ms})"
    )
