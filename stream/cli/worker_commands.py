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
@click.pass_context
def demo(ctx: click.Context, rate: float, users: int, duration: float | None, **flags: Any) -> None:
    """What `make run` runs: topics, a worker process and closed-loop traffic with a live summary."""
    from stream.kafka.clients import ensure_topics
    from stream.simulator.live import run_traffic

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    created = ensure_topics(settings.kafka)
    click.echo(f"broker {settings.kafka.bootstrap_servers}; topics created: {created or 'none (already there)'}")
    # The worker process gets the same settings: the same file, plus what flags changed, through the env.
    env = dict(
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
    # Its own session: a terminal's Ctrl-C reaches only us, and we stop the worker in order.
    worker = subprocess.Popen(cmd, env=env, start_new_session=True)
    click.echo(f"worker pid {worker.pid}; sending simulated traffic at {rate:g} events/s (Ctrl-C to stop)")
    if settings.metrics_port:
        click.echo(f"worker metrics: curl localhost:{settings.metrics_port}/metrics (health: /healthz)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_traffic(settings, rate=rate, users=users, duration_s=duration, stop=stop)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    click.echo(f"worker exited with {worker.returncode}")
