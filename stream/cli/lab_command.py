"""``offerstream backtest``: the strategy lab on a simulated scenario, a recorded topic, or an archive."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from stream.cli.options import comma_choice

log = logging.getLogger(__name__)

# stream.lab.strategies.STRATEGIES (a test checks), named here so that --help does not import the lab
STRATEGY_NAMES = ("full", "sampled", "warm", "online", "hybrid", "base_rate")


def _simulated(scenario: str, days: int, users: int, seed: int, collector: Any) -> None:
    """Run the scenario in closed loop with a seeded uniform logging policy (every offer 1/5 at every decision
    point, so the price models learn from honest logs), feeding the collector event by event and logging each
    decision with the simulator's expected profit of every offer there."""
    import random

    from bandits.offers import default_catalogue
    from stream.lab.rows import Logged
    from stream.simulator import Simulation, closed_loop_run

    offers = default_catalogue()
    rng = random.Random(seed)
    sim = Simulation(scenario=scenario, days=days, users=users, seed=seed, closed_loop=True)
    decisions = collector.decisions

    def decide(event: dict[str, Any]) -> tuple[str, str] | None:
        collector.add(event)
        event_id = event["event_id"]
        if not sim.awaiting_response(event_id):
            return None
        offer = offers[rng.randrange(len(offers))]
        flat = 1.0 if offer.flat_fee > 0 else 0.0
        decisions[event_id] = Logged(offer.share, flat, 1.0 / len(offers), sim.expected_profit(event_id))
        return offer.name, "lab-" + event_id

    closed_loop_run(sim, decide)


def _recorded(path: Path, rejected: Counter[str]) -> Iterator[dict[str, Any]]:
    """Events of a JSON Lines file (``simulate``'s output or a ``record``ing), validated by the event contract."""
    from stream.core.contract import event_to_dict, parse_event
    from stream.core.errors import InvalidMessage
    from stream.io.file_source import read_file

    for record in read_file(path):
        try:
            yield event_to_dict(parse_event(record.value))
        except InvalidMessage as exc:
            rejected[exc.reason.value] += 1


def _archived(archive: Path) -> Iterator[dict[str, Any]]:
    from models.history.archive import iter_archive

    for _, records in iter_archive(archive, "events"):
        yield from records


def _archived_decisions(archive: Path, catalogue: Any) -> dict[str, Any]:
    """The archive's logged decisions by the event id of their decision point (offer terms as logged, else the
    catalogue's), for the price model's rows; empty when the archive has none (e.g. an imported purchase log)."""
    from models.history.archive import iter_archive
    from stream.lab.rows import Logged

    if not (archive / "decisions").is_dir():
        return {}
    terms = {o.name: {"share": o.share, "flat_fee": o.flat_fee} for o in catalogue}
    out = {}
    for _, records in iter_archive(archive, "decisions"):
        for r in records:
            t = r.get("offer_terms") or terms.get(r.get("offer", ""))
            if t is None or not r.get("event_id") or not r.get("propensity"):
                continue
            out[r["event_id"]] = Logged(float(t["share"]), 1.0 if t["flat_fee"] > 0 else 0.0, float(r["propensity"]))
    return out


def scenario_markers(scenario: str, days: int) -> list[dict[str, str]]:
    """The scenario's known changes, as the report marks them (day, label)."""
    from datetime import UTC, datetime, timedelta

    from stream.simulator.scenarios import sale_week
    from stream.simulator.simulation import to_epoch_ms

    start = datetime.fromtimestamp(to_epoch_ms(None) / 1000, UTC).date()

    def day(offset: float) -> str:
        return (start + timedelta(days=int(offset))).isoformat()

    if scenario == "abrupt":
        return [{"day": day(days / 2), "label": "competitor's free shipping"}]
    if scenario == "seasonal":
        first, _ = sale_week(days)
        return [{"day": day(first), "label": "the sale week"}]
    return []


def attach_decision_value(result: dict[str, Any]) -> None:
    """Put each day's decision value beside the day's forecast figures, as ``results.json``'s contract has it:
    ``profit`` (the closed loop's realised profit, else the price model's counterfactual choices at the logged
    decision points) on a simulated scenario, ``ope_value`` (that day's self-normalised IPW estimate of profit per
    decision) on an archive with logged decisions. The full figures stay under ``closed_loop`` and ``price``."""
    loops = result.get("closed_loop", {}).get("strategies", {})
    price = result.get("price", {}).get("strategies", {})
    for name, s in result["strategies"].items():
        by_day: dict[str, dict[str, Any]] = {}
        if name in loops:
            by_day = {
                d["day"]: {"profit": d["profit"], "oracle_profit": d["oracle_profit"]} for d in loops[name]["daily"]
            }
        elif name in price:
            for d in price[name]["daily"]:
                if d.get("profit") is not None:
                    by_day[d["day"]] = {"profit": d["profit"], "oracle_profit": d["oracle_profit"]}
                elif d.get("ope_num") is not None and d.get("ope_den"):
                    by_day[d["day"]] = {"ope_value": round(d["ope_num"] / d["ope_den"], 4)}
        for d in s["daily"]:
            d.update(by_day.get(d["day"], {}))


def render(result: dict[str, Any]) -> str:
    """The summary table printed at the end."""
    head = (
        f"{'strategy':<9} {'days':>4} {'AUC':>7} {'log loss':>9} {'ECE':>7}"
        f" {'train CPU s':>12} {'rows':>10} {'peak MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, s in result["strategies"].items():
        m = s["summary"]

        def f(x: float | None, spec: str) -> str:
            return "-" if x is None else format(x, spec)

        value = f"  {m['profit_fraction']:.4f} of oracle" if m.get("profit_fraction") is not None else ""
        lines.append(
            f"{name:<9} {m['days_compared']:>4} {f(m['auc'], '.4f'):>7} {f(m['logloss'], '.4f'):>9}"
            f" {f(m['ece'], '.4f'):>7} {m['train_cpu_s']:>12.2f} {m['train_rows']:>10,}"
            f" {f(m['train_peak_mb'], '.1f'):>8}{value}"
        )
    return "\n".join(lines)


@click.command()
@click.option(
    "--scenario",
    default=None,
    help="Simulator scenario, in closed loop with uniformly random offers (with --days, --users).",
)
@click.option("--days", type=click.IntRange(min=2), default=30, show_default=True, help="Simulated days.")
@click.option("--users", type=click.IntRange(min=1), default=3000, show_default=True, help="Simulated shoppers.")
@click.option(
    "--events",
    "events_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A recorded topic or simulate output (JSON Lines, .gz ok), replayed in file order.",
)
@click.option(
    "--archive", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="An archive."
)
@click.option(
    "--strategies",
    default=",".join(STRATEGY_NAMES),
    show_default=True,
    callback=comma_choice(STRATEGY_NAMES),
    help="Update strategies to run side by side.",
)
@click.option(
    "--tiers",
    default=None,
    help="Recency sample of sampled and hybrid, MIN-MAX:RATE,... (default 0-30:1,30-90:0.5,90-180:0.1).",
)
@click.option(
    "--retrain-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Nights between snapshot trainings (7: weekly).",
)
@click.option(
    "--retrain-on-drift",
    is_flag=True,
    help="Also retrain the snapshots the night after the online intent learner's drift detector (ADWIN) fires "
    "(silent in the stream's first 28 days, while the history features fill, as in the worker).",
)
@click.option(
    "--repurchase-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Purchase-only histories (e.g. CDNOW): each purchase is a decision point, labelled by a repeat purchase "
    "within this many days.",
)
@click.option(
    "--closed-loop",
    is_flag=True,
    help="With --scenario: also run each strategy's price model in its own closed loop (ε-greedy on its value at "
    "stake) and report the profit it realises against the oracle. One simulation per strategy.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Simulator, sampling and learner seed.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Writes results.json here."
)
@click.option(
    "--report/--no-report", default=True, show_default=True, help="Also write OUT/report.html (needs matplotlib)."
)
@click.option("--log-level", default="WARNING", show_default=True, help="Python logging level.")
def backtest(
    scenario: str | None,
    days: int,
    users: int,
    events_path: Path | None,
    archive: Path | None,
    strategies: tuple[str, ...],
    tiers: str | None,
    retrain_every: int,
    retrain_on_drift: bool,
    repurchase_days: float | None,
    closed_loop: bool,
    seed: int,
    out: Path,
    report: bool,
    log_level: str,
) -> None:
    """Replay a stream day by day and compare how to keep the intent model fresh: full retraining, recency-sampled
    retraining, warm-start fine-tuning, online learning only, and the hybrid the worker runs.

    Every strategy sees the same events in the same order; each day's sessions are forecast before any strategy
    learns them (models trained at the latest the night before; the online learner learns a session when it
    closes). Per day and strategy: AUC (DeLong 95% interval), log loss, calibration error, and the training's
    rows, CPU seconds and peak memory. A simulated scenario runs in closed loop with offers shown uniformly at
    random, so the price model (P(buy | session, offer)) is compared too, with its decision value: the simulator's
    expected profit of the offers it would choose, as a share of the best offer's (with --closed-loop, also what
    each strategy's price model realises running its own shop). On an archive with logged decisions the price
    models are compared as well and their choices valued off-policy (self-normalised IPW). Writes
    OUT/results.json and OUT/report.html (plots, the verdict); prints the verdict, a table and the reasoning.
    """
    from stream.app.settings import load_settings
    from stream.lab.backtest import LabConfig, run_backtest
    from stream.lab.rows import RowCollector, collect_rows
    from stream.simulator import SCENARIOS

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = [x for x in (scenario, events_path, archive) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --scenario, --events and --archive")
    if closed_loop and scenario is None:
        raise click.UsageError("--closed-loop needs --scenario (the simulator answers the offers)")
    rejected: Counter[str] = Counter()
    if scenario is not None:
        if scenario not in SCENARIOS:
            raise click.BadParameter(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        events = None
        described = (
            f"simulated {scenario}, {days} days, {users} shoppers, seed {seed}, offers shown uniformly at random"
        )
    elif events_path is not None:
        events = _recorded(events_path, rejected)
        described = f"events of {events_path}"
    else:
        assert archive is not None
        events = _archived(archive)
        described = f"archive {archive}"
    config = LabConfig(strategies=strategies, seed=seed, retrain_every=retrain_every, retrain_on_drift=retrain_on_drift)
    if tiers is not None:
        from dataclasses import replace

        from models.errors import TierError
        from models.history.sampling import parse_tiers

        try:
            config = replace(config, tiers=parse_tiers(tiers))
        except TierError as exc:
            raise click.BadParameter(str(exc), param_hint="--tiers") from None
    click.echo(f"reading {described} ...", err=True)
    processing = load_settings(env={}).processing
    if events is None:  # the simulator, in closed loop: events and logged decisions together
        collector = RowCollector(processing, decisions={})
        _simulated(str(scenario), days, users, seed, collector)
        rows = collector.finish()
    else:
        logged = _archived_decisions(archive, processing.offers.offers) if archive is not None else {}
        rows = collect_rows(events, processing, repurchase_days=repurchase_days, decisions=logged or None)
    if rejected:
        click.echo(f"skipped {sum(rejected.values())} invalid events: {dict(rejected)}", err=True)
    what = f"purchases labelled by a repeat within {repurchase_days:g} days" if repurchase_days else "labelled sessions"
    click.echo(f"{rows.events:,} events, {rows.n:,} {what} ({rows.unlabelled:,} without a label yet)", err=True)
    from stream.lab.strategies import days_of

    n_days = len(days_of(rows)) + (len(days_of(rows.price)) if rows.price is not None else 0)
    n_days += (days + 1) * len(strategies) if closed_loop else 0
    progress: Any = click.progressbar(length=n_days, label="days", file=sys.stderr)
    with progress as bar:
        markers = scenario_markers(scenario, days) if scenario is not None else []
        result = run_backtest(rows, config, on_day=lambda day: bar.update(1), markers=markers)
        if rows.price is not None and rows.price.n:
            result["price"] = run_backtest(rows.price, config, on_day=lambda day: bar.update(1), markers=markers)
        if closed_loop:
            from stream.lab.decision_value import EPSILON, compare_closed_loops, run_closed_loop

            runs = {
                name: run_closed_loop(
                    name, str(scenario), days, users, seed, config, processing, on_day=lambda: bar.update(1)
                )
                for name in strategies
            }
            result["closed_loop"] = {"epsilon": EPSILON, "strategies": runs} | compare_closed_loops(runs)
    attach_decision_value(result)
    label = f"repeat purchase within {repurchase_days:g} days" if repurchase_days else "the session buys"
    result["source"] |= {"described": described, "rejected_events": dict(rejected), "label": label}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if report:
        from stream.lab.report import write_report

        try:
            page = write_report(result, out)
        except RuntimeError as exc:  # matplotlib missing
            raise click.ClickException(f"{exc} (or pass --no-report; results.json is written)") from None
        click.echo(f"report: {page}", err=True)
    click.echo(f"intent model: {result['verdict']}\n")
    click.echo(render(result))
    click.echo("")
    click.echo(result["recommendation"])
    if "price" in result:
        click.echo("\nprice model (P(buy | session, offer shown), weighted by 1 / logged propensity): ", nl=False)
        click.echo(f"{result['price']['verdict']}\n")
        click.echo(render(result["price"]))
        click.echo("")
        click.echo(result["price"]["recommendation"])
    if "closed_loop" in result:
        click.echo("")
        click.echo(result["closed_loop"]["recommendation"])
    click.echo(f"written to {out / 'results.json'}")
