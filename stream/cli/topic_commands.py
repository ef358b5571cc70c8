"""``offerstream topics``, ``record`` and ``produce``: the Kafka topics, and files to and from them."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

import click
import orjson

from stream.cli.options import kafka_options, need_broker, settings_from

log = logging.getLogger(__name__)


@click.command()
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
    from stream.kafka.topic_files import record_topic

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    n = record_topic(settings.kafka, topic, out, idle_timeout_s=None if follow else idle_timeout, stop=stop)
    click.echo(orjson.dumps({"topic": topic, "out": out, "messages": n}).decode())


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@kafka_options
@click.option("--topic", default=None, help="Target topic (default: the clickstream topic).")
@click.pass_context
def produce(ctx: click.Context, paths: tuple[str, ...], topic: str | None, **flags: Any) -> None:
    """Send recorded or simulated files to a topic, keyed by user_id and stamped with each event's ts (where the
    broker would accept it). Fails, saying how many, when the broker did not acknowledge every message."""
    from stream.kafka.errors import DeliveryError
    from stream.kafka.topic_files import Stamps, produce_files, retention_warning

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    target = topic or settings.kafka.clickstream_topic
    stamps = Stamps()
    try:
        sent = produce_files(settings.kafka, target, paths, stamps=stamps)
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from exc
    warning = retention_warning(settings.kafka, target, stamps.oldest_ms, int(time.time() * 1000))
    if warning:
        click.echo(warning, err=True)
    click.echo(orjson.dumps({"topic": target, "sent": sent}).decode())


@click.command()
@kafka_options
@click.option(
    "--retention-ms",
    type=int,
    default=None,
    help="retention.ms of the topics created (-1: no time limit, for topics that will hold recordings, whose "
    "messages carry their events' old timestamps). Default: the broker's.",
)
@click.pass_context
def topics(ctx: click.Context, retention_ms: int | None, **flags: Any) -> None:
    """Create offerstream's topics where they are missing (existing topics are left as they are)."""
    from stream.kafka.clients import ensure_topics

    settings = settings_from(ctx, **flags)
    need_broker(settings)
    configs = None if retention_ms is None else {"retention.ms": str(retention_ms)}
    click.echo(orjson.dumps({"created": ensure_topics(settings.kafka, configs=configs)}).decode())
