"""The ``offerstream`` command line. Every command reads the one settings object (file < env < flags)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from stream import logs
from stream.errors import ConfigError
from stream.settings import Settings, describe, load_settings

log = logging.getLogger("offerstream")


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Merge the command's flags (only those given) over file and environment."""
    overrides: dict[str, Any] = {}
    mapping = {
        "seed": ("seed",),
        "bootstrap_servers": ("kafka", "bootstrap_servers"),
        "group_id": ("kafka", "group_id"),
        "policy": ("policy", "name"),
        "log_level": ("log_level",),
        "state_dir": ("state_dir",),
    }
    for name, value in flags.items():
        if value is None or name not in mapping:
            continue
        *parents, leaf = mapping[name]
        node = overrides
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        settings = load_settings(ctx.obj.get("config"), overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level)
    return settings


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares."""
    fn = click.option("--seed", type=int, default=None, help="Root of every random choice (settings: seed).")(fn)
    fn = click.option(
        "--policy", type=click.Choice(["thompson", "uniform", "fixed"]), default=None, help="Bandit policy."
    )(fn)
    fn = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
        default=None,
        help="Log level.",
    )(fn)
    return fn


def kafka_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--bootstrap-servers",
        default=None,
        help="Kafka host:port list (or KAFKA_BOOTSTRAP_SERVERS / OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS).",
    )(fn)
    fn = click.option("--group-id", default=None, help="Consumer group of the workers.")(fn)
    return fn


def _need_broker(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise click.ClickException(
            "no Kafka broker configured: set KAFKA_BOOTSTRAP_SERVERS (or --bootstrap-servers), "
            "or use `make run`, which starts a local broker"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (lowest precedence after defaults; then OFFERSTREAM_* env, then flags).",
)
@click.version_option(package_name="offerstream")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """offerstream: clickstream in, offer decisions out, with models kept fresh.

    \b
    Settings come from one object: defaults < --config FILE < environment (OFFERSTREAM_SECTION__KEY,
    e.g. OFFERSTREAM_PROCESSING__MARGIN=0.25; KAFKA_BOOTSTRAP_SERVERS too) < command-line flags.
    `offerstream config` prints the effective settings with secrets masked.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command()
@common
@kafka_options
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="Where clean-stop snapshots live.")
@click.pass_context
def run(ctx: click.Context, **flags: Any) -> None:
    """Run the worker: consume the clickstream topic, emit decisions, rewards and dead letters.

    Stops cleanly on SIGTERM or SIGINT: the batch in hand is committed and the state saved beside its offsets.
    """
    from stream.worker import run_worker

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    result = run_worker(settings, stop)
    click.echo(f"stopped after {result.stats.records} records", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@common
@click.option("--decisions", required=True, type=click.Path(dir_okay=False), help="Decisions out (JSONL[.gz]).")
@click.option("--dead-letters", required=True, type=click.Path(dir_okay=False), help="Dead letters out.")
@click.option("--rewards", type=click.Path(dir_okay=False), default=None, help="Resolved rewards out (optional).")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Records per batch.")
@click.pass_context
def replay(
    ctx: click.Context,
    paths: tuple[str, ...],
    decisions: str,
    dead_letters: str,
    rewards: str | None,
    batch_size: int,
    **flags: Any,
) -> None:
    """Replay recorded files (JSONL, gzip or not, or `record` output) through the processing core.

    Time is the events' own time, so the same files and --seed give byte-identical decisions.
    """
    from stream.replay import replay_files

    settings = _settings(ctx, **flags)
    processor, stats, counts = replay_files(paths, settings, decisions, dead_letters, rewards, batch_size)
    rate = stats.records / stats.seconds if stats.seconds else 0.0
    summary = {
        "records": stats.records,
        "decisions": counts[_kind("decision")],
        "rewards": counts[_kind("reward")],
        "dead_letters": counts[_kind("dead_letter")],
        "open_decisions": processor.open_decisions,
        "seconds": round(stats.seconds, 3),
        "records_per_s": round(rate),
    }
    click.echo(orjson.dumps(summary).decode())


def _kind(name: str) -> Any:
    from stream.records import OutputKind

    return OutputKind(name)


@main.command()
@click.option(
    "--scenario",
    default="stationary",
    show_default=True,
    help="stationary, abrupt, seasonal, gradual, clear_winner.",
)
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--users", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Events out (JSONL; gzip if .gz).")
@click.option("--truth", type=click.Path(dir_okay=False), default=None, help="Oracle ground truth out (JSONL).")
@click.option("--start", default=None, help="First day, ISO-8601 with offset (default 2026-01-05T00:00:00Z).")
@click.option("--margin", type=float, default=0.30, show_default=True, help="Gross margin used by the oracle.")
def simulate(
    scenario: str,
    days: int,
    users: int,
    seed: int,
    out: str,
    truth: str | None,
    start: str | None,
    margin: float,
) -> None:
    """Simulate shoppers open-loop (no offers shown) into a file, with the oracle's truth if asked."""
    from datetime import datetime

    from stream.simulator import SCENARIOS, simulate_to_file

    if scenario not in SCENARIOS:
        raise click.BadParameter(
            f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}", param_hint="--scenario"
        )
    begin = datetime.fromisoformat(start) if start else None
    if begin is not None and begin.tzinfo is None:
        raise click.BadParameter("give --start with a UTC offset", param_hint="--start")
    stats = simulate_to_file(scenario, days, users, seed, out, truth=truth, start=begin, margin=margin)
    click.echo(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode())


@main.command("simulate-live")
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
    from stream.shop_traffic import run_traffic

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_traffic(settings, rate=rate, users=users, scenario=scenario, duration_s=duration, stop=stop)


@main.command()
@common
@kafka_options
@click.option("--rate", type=click.FloatRange(min=0.1), default=100.0, show_default=True, help="Events per second.")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.pass_context
def demo(ctx: click.Context, rate: float, users: int, duration: float | None, **flags: Any) -> None:
    """What `make run` runs: topics, a worker process and closed-loop traffic with a live summary."""
    from stream.kafka_io import ensure_topics
    from stream.shop_traffic import run_traffic

    settings = _settings(ctx, **flags)
    _need_broker(settings)
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
    )
    cmd = [sys.executable, "-m", "stream"]
    if ctx.obj.get("config"):
        cmd += ["--config", str(ctx.obj["config"])]
    cmd.append("run")
    # Its own session: a terminal's Ctrl-C reaches only us, and we stop the worker in order.
    worker = subprocess.Popen(cmd, env=env, start_new_session=True)
    click.echo(f"worker pid {worker.pid}; sending simulated traffic at {rate:g} events/s (Ctrl-C to stop)")
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


@main.command()
@kafka_options
@click.option("--topic", required=True, help="Topic to dump.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Recording out (JSONL; gzip if .gz).")
@click.option(
    "--idle-timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Stop after this many seconds without new messages once the end was reached.",
)
@click.option("--follow", is_flag=True, help="Keep recording new messages until Ctrl-C.")
@click.pass_context
def record(ctx: click.Context, topic: str, out: str, idle_timeout: float, follow: bool, **flags: Any) -> None:
    """Dump a topic, from its beginning, to a compressed JSONL recording (offsets, timestamps, exact bytes)."""
    from stream.recording import record_topic

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    n = record_topic(settings.kafka, topic, out, idle_timeout_s=None if follow else idle_timeout, stop=stop)
    click.echo(orjson.dumps({"topic": topic, "out": out, "messages": n}).decode())


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@kafka_options
@click.option("--topic", default=None, help="Target topic (default: the clickstream topic).")
@click.pass_context
def produce(ctx: click.Context, paths: tuple[str, ...], topic: str | None, **flags: Any) -> None:
    """Send recorded or simulated files to a topic, keyed by user_id and stamped with each event's ts."""
    from stream.recording import produce_files

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    target = topic or settings.kafka.clickstream_topic
    click.echo(orjson.dumps({"topic": target, "sent": produce_files(settings.kafka, target, paths)}).decode())


@main.command()
@kafka_options
@click.pass_context
def topics(ctx: click.Context, **flags: Any) -> None:
    """Create offerstream's topics where they are missing."""
    from stream.kafka_io import ensure_topics

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    click.echo(orjson.dumps({"created": ensure_topics(settings.kafka)}).decode())


@main.command()
@common
@kafka_options
@click.pass_context
def config(ctx: click.Context, **flags: Any) -> None:
    """Print the effective settings as JSON, secrets masked."""
    settings = _settings(ctx, **flags)
    click.echo(orjson.dumps(describe(settings), option=orjson.OPT_INDENT_2).decode())
