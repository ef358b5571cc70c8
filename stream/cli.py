"""The ``offerstream`` command line. Every command reads the one settings object (file < env < flags)."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from stream import logs
from stream.errors import ConfigError
from stream.settings import POLICY_NAMES, Settings, describe, load_settings

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
        "log_format": ("log_format",),
        "state_dir": ("state_dir",),
        "archive": ("models", "archive"),
        "registry": ("models", "registry"),
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
    logs.configure(settings.log_level, settings.log_format)
    return settings


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares."""
    fn = click.option("--seed", type=int, default=None, help="Root of every random choice (settings: seed).")(fn)
    fn = click.option(
        "--policy", type=click.Choice(POLICY_NAMES), default=None, help="Bandit policy (settings: policy.name)."
    )(fn)
    fn = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
        default=None,
        help="Log level.",
    )(fn)
    fn = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="Log lines as text or as JSON objects (settings: log_format).",
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


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the archive is written and where promoted snapshots are read from."""
    fn = click.option(
        "--registry",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Model registry: score with its promoted snapshot (settings: models.registry).",
    )(fn)
    fn = click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Append every valid event and decision to this day-partitioned archive (settings: models.archive).",
    )(fn)
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
@model_options
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

    Time is the events' own time, so the same files and --seed give byte-identical decisions. With --registry
    the snapshot promoted when the replay starts scores the whole replay; --archive archives as `run` does.
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
    """Send recorded or simulated files to a topic, keyed by user_id and stamped with each event's ts (where the
    broker would accept it). Fails, saying how many, when the broker did not acknowledge every message."""
    from stream.errors import DeliveryError
    from stream.recording import Stamps, produce_files, retention_warning

    settings = _settings(ctx, **flags)
    _need_broker(settings)
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


@main.command()
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
    from stream.kafka_io import ensure_topics

    settings = _settings(ctx, **flags)
    _need_broker(settings)
    configs = None if retention_ms is None else {"retention.ms": str(retention_ms)}
    click.echo(orjson.dumps({"created": ensure_topics(settings.kafka, configs=configs)}).decode())


@main.command()
@common
@kafka_options
@click.pass_context
def config(ctx: click.Context, **flags: Any) -> None:
    """Print the effective settings as JSON, secrets masked."""
    settings = _settings(ctx, **flags)
    click.echo(orjson.dumps(describe(settings), option=orjson.OPT_INDENT_2).decode())


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Repeated FIELD=VALUE options as a dict; a field given twice is an error."""
    pairs: dict[str, str] = {}
    for item in values:
        field, sep, value = item.partition("=")
        field, value = field.strip(), value.strip()
        if not sep or not field or not value:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", ctx=ctx, param=param)
        if field in pairs:
            raise click.BadParameter(f"{field} given twice ({pairs[field]!r} and {value!r})", ctx=ctx, param=param)
        pairs[field] = value
    return pairs


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
@click.option(
    "--archive",
    "archive_root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive root; events go to DIR/events/date=YYYY-MM-DD/part-<writer-id>.jsonl.gz.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    callback=_pairs,
    help="Contract field <- source column (repeatable). ts, user_id and type must be mapped or --set.",
)
@click.option(
    "--set",
    "constants",
    multiple=True,
    metavar="FIELD=VALUE",
    callback=_pairs,
    help="Contract field set to VALUE on every row (repeatable), e.g. --set type=purchase.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "tsv", "parquet"]),
    default="auto",
    show_default=True,
    help="auto: .parquet/.pq or PAR1 bytes is Parquet, .tsv is TSV, else CSV (a .gz suffix is ignored).",
)
@click.option(
    "--ts-format",
    default=None,
    help="strptime format of ts text, e.g. %Y%m%d. Default: ISO-8601, or an integer epoch (see --ts-unit).",
)
@click.option("--tz", default="UTC", show_default=True, help="IANA zone of timestamps without an offset.")
@click.option(
    "--ts-unit",
    type=click.Choice(["auto", "s", "ms"]),
    default="auto",
    show_default=True,
    help="Unit of epoch numbers; auto: below 10^11 is seconds, else milliseconds.",
)
@click.option(
    "--delimiter",
    default=None,
    help="Text field separator: one character, 'tab' or 'whitespace' (runs of blanks). Default: ',' (tab for TSV).",
)
@click.option("--no-header", is_flag=True, help="The text file has no header row (give --columns).")
@click.option(
    "--columns",
    default=None,
    metavar="A,B,C",
    help="Comma-separated column names of a text file, in order; needed with --no-header (else they replace "
    "the header's).",
)
@click.option("--encoding", default="utf-8-sig", show_default=True, help="Text encoding of a text file.")
@click.option("--writer-id", default="import", show_default=True, help="Part file name: part-<writer-id>.jsonl.gz.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write refused rows here (JSON lines with row, line, reason, detail, raw; gzip if .gz).",
)
@click.option(
    "--id-prefix",
    default=None,
    help="When event_id is not mapped, ids are <prefix>-<row number> (default prefix: the file's stem).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Rows between archive flushes (and Parquet read batch size).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stats as JSON on stdout (summary to stderr).")
@click.pass_context
def import_(
    ctx: click.Context,
    path: Path,
    archive_root: Path,
    mapping: dict[str, str],
    constants: dict[str, str],
    fmt: str,
    ts_format: str | None,
    tz: str,
    ts_unit: str,
    delimiter: str | None,
    no_header: bool,
    columns: str | None,
    encoding: str,
    writer_id: str,
    rejects: Path | None,
    id_prefix: str | None,
    batch_rows: int,
    as_json: bool,
    **flags: Any,
) -> None:
    """Backfill the archive from a warehouse export: CSV, TSV, whitespace-separated text or Parquet.

    Each row becomes one event. --map FIELD=COLUMN names the source column of a contract field
    (event_id, ts, user_id, type, session_id, product_id, category, price, quantity, cart_value, revenue,
    device, referrer, decision_id); --set FIELD=VALUE gives a field the same value on every row. ts, user_id and type
    are required. Without an event_id mapping, ids are <file stem or --id-prefix>-<row>, so importing the
    same file again adds nothing new to what the archive's readers return. Every row goes through the
    event contract; a refused row is counted by reason and, with --rejects, written there.

    \b
    Example: the CDNOW purchase log (customer id, date YYYYMMDD, number of CDs,
    dollar value; whitespace-separated, no header):
      offerstream import CDNOW_master.txt --archive data/archive \\
        --no-header --delimiter whitespace --columns customer,date,cds,dollars \\
        --map user_id=customer --map ts=date --ts-format %Y%m%d \\
        --map quantity=cds --map revenue=dollars --set type=purchase

    Parquet needs pyarrow: pip install 'offerstream[parquet]'.
    """
    from models.importer import FIELDS, import_table
    from stream.contract import Event
    from stream.errors import OfferstreamError

    _settings(ctx, **flags)
    unknown = sorted((set(mapping) | set(constants)) - FIELDS)
    if unknown:
        raise click.BadParameter(
            f"not contract fields: {', '.join(unknown)}; fields are {', '.join(sorted(FIELDS))}",
            param_hint="--map/--set",
        )
    required = {f.alias or name for name, f in Event.model_fields.items() if f.is_required()} - {"event_id"}
    missing = sorted(required - set(mapping) - set(constants))
    if missing:
        raise click.UsageError(
            f"required field(s) {', '.join(missing)} neither mapped nor set: "
            f"give --map {missing[0]}=COLUMN or --set {missing[0]}=VALUE"
        )
    if ts_format is not None and "%" not in ts_format:
        raise click.BadParameter(
            f"{ts_format!r} is not a strptime format (e.g. %Y%m%d); for epoch numbers or ISO-8601 "
            "leave --ts-format out (and use --ts-unit)",
            param_hint="--ts-format",
        )
    names = [c.strip() for c in columns.split(",")] if columns else None
    if names is not None and not all(names):
        raise click.BadParameter(f"empty name in {columns!r}", param_hint="--columns")
    try:
        stats = import_table(
            path,
            archive_root,
            mapping,
            fmt=None if fmt == "auto" else fmt,
            constants=constants,
            ts_format=ts_format,
            tz=tz,
            ts_unit=ts_unit,
            delimiter=delimiter,
            header=not no_header,
            columns=names,
            encoding=encoding,
            writer_id=writer_id,
            rejects=rejects,
            id_prefix=id_prefix,
            batch_rows=batch_rows,
        )
    except (OfferstreamError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        if type(exc).__module__.startswith("pyarrow"):  # a file that is not Parquet after all
            raise click.ClickException(f"{path}: cannot read as Parquet: {exc}") from None
        raise
    summary = f"imported {stats['imported']} of {stats['rows']} rows from {path} into {archive_root}"
    if stats["imported"]:
        summary += f", {stats['first_day']} to {stats['last_day']} ({stats['days']} days)"
    if stats["rejected_total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in stats["rejected"].items())
        summary += f"; rejected {stats['rejected_total']} ({reasons})"
        summary += f", written to {rejects}" if rejects is not None else "; --rejects PATH to see them"
    click.echo(summary, err=as_json)
    if as_json:
        click.echo(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode())


@main.command()
@common
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), default=None, help="Archive to train from."
)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help="Model registry.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day of data (UTC).")
@click.option("--mode", type=click.Choice(["scratch", "warm"]), default="scratch", show_default=True)
@click.option(
    "--tiers", default=None, help="Recency sample MIN-MAX:RATE,... in days (default 0-30:1,30-90:0.5,90-180:0.1)."
)
@click.option("--weighted/--unweighted", default=None, help="Weight sampled rows by 1/rate (default: weighted).")
@click.option(
    "--holdout-days", type=click.IntRange(min=1), default=None, help="Most recent days held out for the gate."
)
@click.option("--gate-metric", type=click.Choice(["auc", "logloss", "ece"]), default=None, help="Metric of the gate.")
@click.option("--gate-tolerance", type=click.FloatRange(min=0), default=None, help="How much worse may still go live.")
@click.option("--compare/--no-compare", default=True, show_default=True, help="Also train the other mode and compare.")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Boosting rounds from scratch (default 200).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True, help="XGBoost threads, 0 = all.")
@click.option("--schedule", type=click.Choice(["nightly"]), default=None, help="Keep running: nightly, and on drift.")
@click.option("--at", "at", default=None, help="UTC time of the nightly run with --schedule (default 02:00).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def retrain(
    ctx: click.Context,
    as_of: Any,
    mode: str,
    tiers: str | None,
    weighted: bool | None,
    holdout_days: int | None,
    gate_metric: str | None,
    gate_tolerance: float | None,
    compare: bool,
    rounds: int | None,
    threads: int,
    schedule: str | None,
    at: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Retrain the snapshot models from the archive's recency sample, gate them and promote the winner.

    \b
    Reads the archive day by day (memory holds one day and the sample), rebuilds each decision point's
    features with the worker's own code, samples sessions by age (default 100% of the last 30 days, 50% of
    days 31-90, 10% of days 91-180, nothing older; each row weighted by 1/rate), trains XGBoost models for
    purchase intent and price sensitivity, and compares them with the current snapshot on the most recent
    held-out days. The snapshot is written to the registry either way; it goes live only if it passes.
    --mode warm continues the current snapshot on the days it has not seen (xgb_model); with --compare
    (default) the other mode is trained on the same rows and both are printed with their compute time.
    With --schedule nightly it keeps running: each night at --at (UTC) as of the day before, and early
    (as of today) when a worker's drift alarm asks, at most once per models.drift_retrain_min_interval_s.
    """
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from models.retrain import NIGHTLY_PARAMS, comparison_table, nightly_config
    from models.retrain import retrain as run_retrain
    from models.schedule import RetrainScheduler

    extra = {k: v for k, v in (("archive", flags.pop("archive")), ("registry", flags.pop("registry"))) if v is not None}
    settings = _settings(ctx, **flags, **extra)
    m = settings.models
    if m.archive is None or m.registry is None:
        raise click.UsageError("give --archive and --registry (or models.archive / models.registry in settings)")
    archive_dir, registry_dir = m.archive, m.registry
    overrides = {
        "tiers": tiers,
        "weighted": weighted,
        "holdout_days": holdout_days,
        "gate_metric": gate_metric,
        "gate_tolerance": gate_tolerance,
    }
    try:
        # the settings' validators parse the tiers: a bad one is a usage error, whichever way it was given
        m = m.model_validate(m.model_dump() | {k: v for k, v in overrides.items() if v is not None})
    except (ValueError, ConfigError) as exc:
        raise click.UsageError(str(exc)) from None
    params = dataclasses.replace(NIGHTLY_PARAMS, seed=settings.seed, nthread=threads)
    if rounds is not None:
        params = dataclasses.replace(params, num_rounds=rounds)

    def once(day: Any, reason: str) -> None:
        config = nightly_config(
            m, archive_dir, registry_dir, day, settings.seed, mode=mode, compare=compare, params=params, reason=reason
        )
        report = run_retrain(config, settings.processing, ZoneInfo(m.timezone))
        if as_json:
            click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
            return
        click.echo(f"retrain as of {report['as_of']} ({reason}, mode {mode}): snapshot {report['version']}")
        for tier in report["sample"]:
            click.echo(
                f"  tier {tier['min_age_days']:>3}-{tier['max_age_days']:<3} days  rate {tier['rate']:<4g}"
                f"  available {tier['available']:>9}  sampled {tier['sampled']:>9}"
            )
        click.echo(comparison_table(report))
        verdict = report["gate"]
        click.echo(f"gate: {'PROMOTED' if verdict['promote'] else 'kept out of service'} ({verdict['reason']})")
        c = report["compute"]
        click.echo(f"compute: {c['total_wall_s']} s wall, {c['total_cpu_s']} s CPU, peak RSS {c['peak_rss_mb']} MB")

    if schedule is None:
        day = as_of.date() if as_of is not None else datetime.now(UTC).date() - timedelta(days=1)
        once(day, "manual")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = RetrainScheduler(at or m.retrain_at, registry_dir, m.drift_retrain_min_interval_s, datetime.now(UTC))
    log.info("retrain scheduler: nightly at %s UTC, early on drift requests in %s", at or m.retrain_at, m.registry)
    while not stop.is_set():
        now = datetime.now(UTC)
        reason = scheduler.due(now)
        if reason is not None:
            try:
                once(scheduler.as_of(reason, now), reason)
            except Exception:
                log.exception("retrain (%s) failed; the current snapshot stays in service", reason)
            scheduler.done(reason, now)
        stop.wait(30)


# Commands kept in their own modules, registered here so `offerstream --help` lists them.
from stream.cli_ope import ope  # noqa: E402 - needs `main` defined above; cli_ope imports cli lazily

main.add_command(ope)
from stream.cli_lab import backtest  # noqa: E402

main.add_command(backtest)
