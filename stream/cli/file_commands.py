"""``offerstream replay`` and ``simulate``: recorded or simulated files through the processing core."""

from __future__ import annotations

import logging
from typing import Any

import click
import orjson

from stream.cli.options import common, model_options, settings_from

log = logging.getLogger(__name__)


@click.command()
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
    from stream.app.replay import replay_files

    settings = settings_from(ctx, **flags)
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
    from stream.core.records import OutputKind

    return OutputKind(name)


@click.command()
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
