"""The worker's Prometheus metrics and health check, served over HTTP (``metrics_port``, default 9464).

``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (JSON; 200 while the worker's loop turns, 503
when it has not for ``health_stall_s`` or has stopped). The worker feeds :class:`WorkerMetrics` between batches
(:meth:`WorkerMetrics.observe_batch`); the HTTP thread only reads what the registry holds, so a scrape never
touches the processing core. Counts come from the core's own counters as deltas, so a recovery (which
restores and replays the counters) never makes a Prometheus counter go backwards or count twice.

Metric names (all prefixed ``offerstream_``):

* ``records_total``, ``events_total`` (valid), ``decisions_total{offer}``, ``dead_letters_total{reason}``,
  ``rewards_total``, ``conversions_total``, ``sessions_closed_total``, ``drift_alarms_total{learner}``;
* ``batch_duration_seconds`` (histogram: poll to commit, per batch), ``batch_records`` (histogram);
* ``consumer_lag`` (messages behind the end of the assigned partitions), ``input_deleted_unread_total``
  (input records the broker's retention deleted before the worker read them, at most), ``users_tracked``,
  ``open_decisions``;
* ``model_info{model,version}`` (1 for what scores now), ``model_updates{model}`` (examples each online learner
  and the policy have learned), ``snapshot_age_seconds`` (since the nightly snapshot in use was written);
* ``transactions_total{outcome}``, ``recoveries_total``, ``checkpoints_total{outcome}``,
  ``last_batch_timestamp_seconds``;
* ``partitions_owned`` (input partitions this worker processes now), ``partition_restores_total{source}``
  (partition states taken over: ``memory``, already current here; ``changelog``, rebuilt from it),
  ``restore_records_total`` and ``restore_seconds_total`` (changelog records read and time spent reading them),
  ``restore_behind_records`` (records the last restored partition's changelog lagged its committed input by:
  0 unless the changelog was lost or written outside the transaction);
* ``stage_seconds_total{stage}``: wall time spent in each stage of the pipeline (:mod:`stream.engine.stage_clock`: read,
  parse, state, snapshot, learners, policy, decide, write); its rate per stage shows where a slow worker's
  time goes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

log = logging.getLogger(__name__)

PREFIX = "offerstream_"
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BEHIND_UPDATES_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
LESSON_LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BATCH_RECORDS_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 5000)

# processor counter prefix -> (metric, label)
_LABELLED = {"decisions.": "decisions", "dead_letters.": "dead_letters", "drift_alarms.": "drift_alarms"}
_PLAIN = ("records", "events", "rewards", "conversions", "sessions_closed")


class WorkerMetrics:
    """One registry per worker (tests run several in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.plain = {name: Counter(f"{PREFIX}{name}", _help(name), registry=r) for name in _PLAIN}
        self.decisions = Counter(f"{PREFIX}decisions", "decisions emitted, by offer", ["offer"], registry=r)
        self.dead_letters = Counter(
            f"{PREFIX}dead_letters", "messages dead-lettered, by reason", ["reason"], registry=r
        )
        self.drift_alarms = Counter(f"{PREFIX}drift_alarms", "drift alarms, by online learner", ["learner"], registry=r)
        self.labelled = {
            "decisions": self.decisions,
            "dead_letters": self.dead_letters,
            "drift_alarms": self.drift_alarms,
        }
        self.batch_seconds = Histogram(
            f"{PREFIX}batch_duration_seconds",
            "wall time of a batch from poll to commit",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.batch_records = Histogram(
            f"{PREFIX}batch_records", "records per batch", buckets=BATCH_RECORDS_BUCKETS, registry=r
        )
        self.lag = Gauge(f"{PREFIX}consumer_lag", "messages behind the end of the assigned partitions", registry=r)
        self.deleted_unread = Counter(
            f"{PREFIX}input_deleted_unread",
            "input records the broker deleted (retention) before the worker read them, at most",
            registry=r,
        )
        self.users = Gauge(f"{PREFIX}users_tracked", "users whose state the worker holds", registry=r)
        self.open_decisions = Gauge(f"{PREFIX}open_decisions", "decisions waiting for a reward", registry=r)
        self.model_info = Gauge(
            f"{PREFIX}model_info", "1 for each model version in use", ["model", "version"], registry=r
        )
        self.model_updates = Gauge(
            f"{PREFIX}model_updates", "examples each online model learned", ["model"], registry=r
        )
        self.snapshot_age = Gauge(
            f"{PREFIX}snapshot_age_seconds", "age of the nightly snapshot in use (NaN: none)", registry=r
        )
        self.transactions = Counter(f"{PREFIX}transactions", "Kafka transactions, by outcome", ["outcome"], registry=r)
        self.recoveries = Counter(
            f"{PREFIX}recoveries", "state rebuilt from the checkpoint after a failed batch", registry=r
        )
        self.checkpoints = Counter(f"{PREFIX}checkpoints", "state checkpoints, by outcome", ["outcome"], registry=r)
        self.last_batch = Gauge(f"{PREFIX}last_batch_timestamp_seconds", "when the last batch committed", registry=r)
        self.partitions_owned = Gauge(
            f"{PREFIX}partitions_owned", "input partitions this worker processes now", registry=r
        )
        self.partition_restores = Counter(
            f"{PREFIX}partition_restores",
            "partition states taken over on assignment, by where from (memory or changelog)",
            ["source"],
            registry=r,
        )
        self.restore_records = Counter(f"{PREFIX}restore_records", "changelog records read to restore", registry=r)
        self.restore_seconds = Counter(f"{PREFIX}restore_seconds", "time spent reading changelogs", registry=r)
        self.restore_behind = Gauge(
            f"{PREFIX}restore_behind_records",
            "how far the last restored partition's changelog lagged its committed input (0 when exact)",
            registry=r,
        )
        self.lessons = Counter(
            f"{PREFIX}lessons",
            "lessons on the model topic: sent by this worker, folded in from others, refused (settings differ)",
            ["outcome"],
            registry=r,
        )
        self.lesson_lag = Histogram(
            f"{PREFIX}lesson_lag_seconds",
            "how old another worker's lesson was when this worker folded it in (its learners ran that far behind)",
            buckets=LESSON_LAG_BUCKETS,
            registry=r,
        )
        self.behind_updates = Histogram(
            f"{PREFIX}fleet_behind_updates",
            "policy updates in the other workers' lessons folded in at once (how far behind the fleet's model)",
            buckets=BEHIND_UPDATES_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Counter(
            f"{PREFIX}stage_seconds", "wall time spent in each stage of the pipeline", ["stage"], registry=r
        )
        self._stage_ns: dict[str, int] = {}
        self.snapshot_age.set(float("nan"))
        self._baseline: dict[str, int] = {}
        self._versions: dict[str, str] = {}
        self._tx_seen = {"committed": 0, "aborted": 0}

    def attach(self, counters: Mapping[str, int]) -> None:
        """A (re)built core: its counters so far (restored, replayed) are already counted, or belong to a past
        life of the worker."""
        self._baseline = dict(counters)
        self._tx_seen = {"committed": 0, "aborted": 0}
        self._stage_ns = {}  # a new core's stage clock starts at zero

    def observe_counters(self, counters: Mapping[str, int]) -> None:
        for key, value in counters.items():
            delta = value - self._baseline.get(key, 0)
            if delta <= 0:
                continue
            self._baseline[key] = value
            if key in self.plain:
                self.plain[key].inc(delta)
                continue
            for prefix, metric in _LABELLED.items():
                if key.startswith(prefix):
                    self.labelled[metric].labels(key[len(prefix) :]).inc(delta)
                    break

    def observe_stages(self, ns: Mapping[str, int]) -> None:
        """The core's stage clock (cumulative nanoseconds per stage) as counter increments."""
        for stage, total in ns.items():
            delta = total - self._stage_ns.get(stage, 0)
            if delta > 0:
                self.stage_seconds.labels(stage).inc(delta / 1e9)
                self._stage_ns[stage] = total

    def observe_models(self, versions: Mapping[str, str], snapshot_created_ms: int | None, now_ms: int) -> None:
        for model, version in versions.items():
            old = self._versions.get(model)
            if old != version:
                if old is not None:
                    self.model_info.remove(model, old)
                self.model_info.labels(model, version).set(1)
                self._versions[model] = version
            _, _, count = version.rpartition("@")
            if count.isdigit():
                self.model_updates.labels(model).set(int(count))
        self.snapshot_age.set(float("nan") if snapshot_created_ms is None else (now_ms - snapshot_created_ms) / 1000)

    def observe_transactions(self, committed: int, aborted: int) -> None:
        for outcome, total in (("committed", committed), ("aborted", aborted)):
            delta = total - self._tx_seen[outcome]
            if delta > 0:
                self.transactions.labels(outcome).inc(delta)
                self._tx_seen[outcome] = total


def _help(name: str) -> str:
    return {
        "records": "records consumed, valid or not",
        "events": "valid events processed",
        "rewards": "decisions resolved (purchase or window closed)",
        "conversions": "decisions followed by a purchase",
        "sessions_closed": "sessions closed (labels for the intent learner)",
    }[name]


class Health:
    """The loop's heartbeat: healthy while it turned within ``stall_s`` and the worker has not stopped."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.clock = clock
        self.state = "starting"
        self.beat = clock()
        self.detail: dict[str, Any] = {}

    def tick(self, state: str = "consuming", **detail: Any) -> None:
        self.state = state
        self.beat = self.clock()
        self.detail.update(detail)

    def report(self) -> tuple[bool, dict[str, Any]]:
        ok, body, _ = self.status()
        return ok, body

    def status(self) -> tuple[bool, dict[str, Any], float]:
        """:meth:`report` and the heartbeat it judged, read once (the loop thread may tick meanwhile)."""
        beat, state = self.beat, self.state
        since = self.clock() - beat
        # restoring replays a checkpoint's gap and recovering waits out a backoff: both report, neither beats
        ok = state in ("starting", "restoring", "recovering") or (state != "stopped" and since <= self.stall_s)
        body = {"status": "ok" if ok else "unhealthy", "state": state, "seconds_since_loop": round(since, 3)}
        return ok, body | self.detail, beat


class StallReporter:
    """Logs the loop thread's stack once per stall (no :meth:`Health.tick` for ``health.stall_s``), so a stuck
    worker says where it is stuck instead of going silent; a daemon thread, stopped by :meth:`close`."""

    def __init__(self, health: Health, thread_id: int, check_every_s: float | None = None) -> None:
        self.health = health
        self.thread_id = thread_id
        self.reported = 0
        self._stop = threading.Event()
        self._every = check_every_s if check_every_s is not None else max(0.05, health.stall_s / 4)
        self._thread = threading.Thread(target=self._watch, name="stall-reporter", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        reported_beat: float | None = None
        while not self._stop.wait(self._every):
            ok, body, beat = self.health.status()
            if ok or body["state"] == "stopped" or beat == reported_beat:
                continue
            reported_beat = beat
            frame = sys._current_frames().get(self.thread_id)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"
            self.reported += 1
            log.error(
                "worker loop stalled: no turn for %.0f s (state %s); it is at:\n%s",
                body["seconds_since_loop"],
                body["state"],
                stack.rstrip(),
            )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s would flood the log
        return None


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a daemon thread; ``port`` 0 picks a free port (see :attr:`port`)."""

    def __init__(self, metrics: WorkerMetrics, health: Health, host: str, port: int) -> None:
        prometheus = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, body = health.report()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
                return [orjson.dumps(body)]
            return prometheus(environ, start_response)

        self._httpd = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def start_metrics_server(metrics: WorkerMetrics, health: Health, host: str, port: int | None) -> MetricsServer | None:
    """The server, or None when disabled (``port`` None) or the port is taken (logged: the worker runs on)."""
    if port is None:
        return None
    try:
        server = MetricsServer(metrics, health, host, port)
    except OSError as exc:
        log.error("metrics endpoint on %s:%s unavailable (%s); the worker runs without it", host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.port)
    return server
