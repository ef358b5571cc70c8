"""Helpers for the broker-backed tests: wait for a condition, ask whether a consumer group is done, run a
worker as a process of its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stream.app.settings import Settings
from stream.app.worker import WorkerResult, run_worker
from stream.kafka.clients import ensure_topics, group_committed_total
from stream.kafka.settings import KafkaSettings


def wait_for(
    predicate,
    timeout: float = 60.0,
    every: float = 0.2,
    what: str = "condition",
    details: Callable[[], str] | None = None,
):
    """Poll ``predicate`` until it is truthy; on timeout fail with ``what`` and, when given, ``details()`` (a
    worker's log, say), so that a failure on CI says what the worker was doing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    message = f"timed out after {timeout}s waiting for {what}"
    raise AssertionError(message if details is None else f"{message}\n{details()}")


def log_tail(path: Path, chars: int = 8000) -> Callable[[], str]:
    """For ``wait_for(details=...)``: the last ``chars`` of a log file, read when the wait fails."""

    def tail() -> str:
        text = path.read_text(errors="replace") if path.exists() else "(no log written)"
        return f"--- last {chars} characters of {path.name} ---\n{text[-chars:]}"

    return tail


REPO = Path(__file__).resolve().parents[1]
BROKER_SCRIPT = REPO / "docker" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(settings: Settings, state_dir: Path, log_path: Path, **env: str) -> subprocess.Popen:
    """``offerstream run`` against the settings' broker, topics and group, in a process of its own."""
    k = settings.kafka
    environ = dict(
        os.environ,
        OFFERSTREAM_SEED=str(settings.seed),
        OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS=k.bootstrap_servers or "",
        OFFERSTREAM_KAFKA__CLICKSTREAM_TOPIC=k.clickstream_topic,
        OFFERSTREAM_KAFKA__DECISIONS_TOPIC=k.decisions_topic,
        OFFERSTREAM_KAFKA__REWARDS_TOPIC=k.rewards_topic,
        OFFERSTREAM_KAFKA__DEAD_LETTER_TOPIC=k.dead_letter_topic,
        OFFERSTREAM_KAFKA__GROUP_ID=k.group_id,
        OFFERSTREAM_KAFKA__PARTITIONS=str(k.partitions),
        OFFERSTREAM_STATE_DIR=str(state_dir),
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "stream", "run"],
        env=environ,
        cwd=REPO,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


def committed_total(settings: Settings) -> int:
    """The group's committed offsets on the clickstream topic, summed over partitions (0 when unknown)."""
    return group_committed_total(settings.kafka) or 0


def group_done(settings: Settings, expected_total: int) -> bool:
    """True when the group's committed offsets on the clickstream topic add up to ``expected_total``."""
    committed = group_committed_total(settings.kafka)
    return committed is not None and committed >= expected_total


TOPICS = ("clickstream_topic", "decisions_topic", "rewards_topic", "dead_letter_topic")


def suffixed_topics(kafka: KafkaSettings, tag: str, topics: Sequence[str] = TOPICS, **update: object) -> KafkaSettings:
    """The Kafka settings with ``.tag`` appended to the named topics (default: all four), and ``update``."""
    return kafka.model_copy(update={**{name: f"{getattr(kafka, name)}.{tag}" for name in topics}, **update})


def one_partition_copy(base: Settings, tag: str, **update: object) -> Settings:
    """The settings with their own one-partition output topics and group (suffix ``tag``), created; the
    clickstream topic too unless ``share_input``. One partition makes the processing order the input's order."""
    share_input = bool(update.pop("share_input", False))
    k = base.kafka
    topics = TOPICS[1:] if share_input else TOPICS
    kafka = suffixed_topics(k, tag, topics, group_id=f"{k.group_id}.{tag}", partitions=1)
    settings = base.model_copy(update={"kafka": kafka, **update})
    ensure_topics(settings.kafka)
    return settings


def run_until_consumed(
    settings: Settings, total: int, timeout: float = 120.0, while_running: Callable[[], None] | None = None
) -> WorkerResult:
    """Run the worker in this process until its group has committed ``total`` records (calling
    ``while_running`` then, before the stop), stop it, and return its result; fails if it crashed or hung."""
    stop = threading.Event()
    result: dict[str, object] = {}

    def work() -> None:
        try:
            result["r"] = run_worker(settings, stop)
        except BaseException as exc:  # reported below, with the test's failure
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True, name="test-worker")
    thread.start()
    try:
        wait_for(lambda: "error" in result or group_done(settings, total), timeout=timeout, what=f"{total} consumed")
        assert "error" not in result, f"the worker crashed: {result['error']!r}"
        if while_running is not None:
            while_running()
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive(), "the worker did not stop"
    assert "r" in result, f"the worker crashed: {result.get('error')!r}"
    found = result["r"]
    assert isinstance(found, WorkerResult)
    return found


def run_process_to_end(settings: Settings, log_path: Path, total: int, timeout: float = 300.0, **env: str) -> None:
    """``offerstream run`` as a process until its group has committed ``total`` records, then SIGTERM: it must
    exit 0 (a clean stop, state checkpointed); killed if anything fails on the way."""
    worker = start_worker(settings, settings.state_dir, log_path, **env)
    try:
        wait_for(
            lambda: group_done(settings, total),
            timeout=timeout,
            what=f"{total} consumed by the worker process",
            details=log_tail(log_path),
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=90) == 0, log_tail(log_path)()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
