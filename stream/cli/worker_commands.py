"""``offerstream run``, ``demo`` and ``simulate-live``: the worker, and a simulated shop against it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click

from stream.cli.options import common, kafka_options, model_options, need_broker, settings_from

log = logging.getLogger(__name__)


@click.command()
@common
@kafka_options
@model_options
@click.option(
    "--state-dir", type=click.Path(path_type=Path), default=None, help="Where the worker's state checkpoints live."
)
@click.pass_context
def run(ctx: click.Context, **flags: Any) -> None:
    """Run the worker: consume the clickstream topic, emit decisions, rewards and dead letters.

    Exactly-once by default: each batch's outputs and input offsets commit in one Kafka transaction (readers
    of the decisions topic set isolation_level=read_committed). The state is checkpointed every
    checkpoint_every_records records; a restart, after a clean stop or a crash, resumes exactly at the
    committed offsets. With --registry it scores with the promoted snapshot and swaps to a newly promoted one
    without restart; with --archive it appends valid events and decisions to the archive before committing.
    A failed batch (broker away, transaction refused) or a consumer that stalls with input waiting
    (kafka.stall_timeout_s) is aborted: the worker rebuilds its clients and state from the checkpoint and
    retries with backoff. Serves /metrics and /healthz on metrics_port (9464). Stops cleanly on SIGTERM or
    SIGINT: the batch in hand is committed and the state checkpointed.
    """
    from stream.app.worker import run_worker

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    result = run_worker(settings, stop)
    click.echo(f"stopped after {result.stats.records} records", err=True)


@click.command("simulate-live")
@common
@kafka_options
@click.option("--rate", type=click.FloatRange(min=0.1), default=50.0, show_default=True, help="Events per second.")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--scenario", default="stationary", show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.pass_context
def simulate_live(
    ctx: click.Context, rate: float, users: int, scenario: str, duration: float | None, **flags: Any
) -> None:
    """Closed-loop shoppers against a running worker: events in, decisions read back and acted on."""
    from stream.simulator.live import run_traffic

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_traffic(settings, rate=rate, users=users, scenario=scenario, duration_s=duration, stop=stop)


@click.command()
@common
@kafka_options
@click.option("--rate", type=click.FloatRange(min=0.1), default=100.0, show_default=True, help="Events per second.")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes in the group: worker-N, with state directory STATE_DIR/worker-N, metrics port + N - 1.",
)
@click.pass_context
def demo(ctx: click.Context, rate: float, users: int, duration: float | None, workers: int, **flags: Any) -> None:
    """What `make run` runs: topics, worker processes and closed-loop traffic with a live summary.

    With --workers N the workers share one consumer group: the summary shows which input partitions each one
    decides for, and its rate. A group has at most as many busy workers as the clickstream topic has partitions.
    """
    from stream.kafka.clients import ensure_topics
    from stream.simulator.live import run_traffic

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    created = ensure_topics(settings.kafka)
    click.echo(f"broker {settings.kafka.bootstrap_servers}; topics created: {created or 'none (already there)'}")
    # The worker processes get the same settings: the same file, plus what flags changed, through the env.
    base_env = dict(
        os.environ,
        OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers or "",
        OFFERSTREAM_KAFKA__GROUP_ID=settings.kafka.group_id,
        OFFERSTREAM_SEED=str(settings.seed),
        OFFERSTREAM_POLICY__NAME=settings.policy.name,
        OFFERSTREAM_LOG_LEVEL=settings.log_level,
        OFFERSTREAM_LOG_FORMAT=settings.log_format,
    )
    cmd = [sys.executable, "-m", "stream"]
    if ctx.obj.get("config"):
        cmd += ["--config", str(ctx.obj["config"])]
    cmd.append("run")
    partitions = _partition_count(settings)
    if workers > partitions:
        click.echo(f"note: {partitions} partitions keep at most {partitions} of the {workers} workers busy")
    procs: list[subprocess.Popen[bytes]] = []
    for n in range(1, workers + 1):
        # Stable names: a demo started again (with as many workers or more) rejoins the group as the same static
        # members at once, instead of waiting out the session timeout of members that are gone.
        env = dict(base_env, OFFERSTREAM_KAFKA__INSTANCE_ID=f"worker-{n}")
        env["OFFERSTREAM_STATE_DIR"] = str(settings.state_dir / f"worker-{n}")
        if settings.metrics_port:
            env["OFFERSTREAM_METRICS_PORT"] = str(settings.metrics_port + n - 1)
        # Its own session: a terminal's Ctrl-C reaches only us, and we stop the workers in order.
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
    pids = ", ".join(str(p.pid) for p in procs)
    click.echo(f"worker pids {pids}; sending simulated traffic at {rate:g} events/s (Ctrl-C to stop)")
    if settings.metrics_port:
        ports = ", ".join(str(settings.metrics_port + n) for n in range(workers))
        click.echo(f"worker metrics: curl localhost:PORT/metrics for PORT in {ports} (health: /healthz)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_traffic(settings, rate=rate, users=users, duration_s=duration, stop=stop)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    codes = [proc.returncode for proc in procs]
    click.echo(f"worker exited with {codes[0]}" if workers == 1 else f"workers exited with {codes}")


def _partition_count(settings: Any) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings.kafka.client_options(), group_id=None)
    try:
        return len(consumer.partitions_for_topic(settings.kafka.clickstream_topic) or ())
    finally:
        consumer.close()
