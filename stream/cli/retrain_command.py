"""``offerstream retrain``: the nightly snapshot's retrain, gate and promotion."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click
import orjson

from stream.cli.options import common, settings_from
from stream.core.errors import ConfigError

log = logging.getLogger(__name__)


@click.command()
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
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Boosting rounds from scratch (default 400).")
@click.option(
    "--max-trees",
    type=click.IntRange(min=1),
    default=None,
    help="Most trees a snapshot's booster holds (default 600); at the cap --mode warm refreshes leaves instead.",
)
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
    max_trees: int | None,
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
    --mode warm fine-tunes the current snapshot on the rows of the days it has not learned: one tree per 50
    new rows, at most 10 (xgb_model); at --max-trees it refreshes the leaves instead of adding trees; on fewer
    than 200 new rows it keeps the snapshot as it is and those rows wait for a later night. With --compare
    (default) the other mode is trained on the same rows and both are printed with their compute time.
    With --schedule nightly it keeps running: each night at --at (UTC) as of the day before, and early
    (as of today) when a worker's drift alarm asks, at most once per models.drift_retrain_min_interval_s.
    """
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from models.snapshots.retrain import NIGHTLY_PARAMS, comparison_table, nightly_config
    from models.snapshots.retrain import retrain as run_retrain
    from models.snapshots.schedule import RetrainScheduler

    extra = {k: v for k, v in (("archive", flags.pop("archive")), ("registry", flags.pop("registry"))) if v is not None}
    settings = settings_from(ctx, **flags, **extra)
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
    try:
        params = dataclasses.replace(
            NIGHTLY_PARAMS,
            seed=settings.seed,
            nthread=threads,
            num_rounds=NIGHTLY_PARAMS.num_rounds if rounds is None else rounds,
            max_trees=NIGHTLY_PARAMS.max_trees if max_trees is None else max_trees,
        )
    except ValueError as exc:  # e.g. --rounds above --max-trees
        raise click.UsageError(str(exc)) from None

    def once(day: Any, reason: str) -> None:
        config = nightly_config(
            m,
            archive_dir,
            registry_dir,
            day,
            settings.seed,
            settings.processing.offers.terms(),
            mode=mode,
            compare=compare,
            params=params,
            reason=reason,
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
