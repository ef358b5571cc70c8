"""``offerstream ope``: off-policy evaluation of a target policy on our decision logs or the Open Bandit Dataset."""

from __future__ import annotations

import math
from typing import Any

import click
import orjson

from bandits.ope.evaluate import ESTIMATORS
from stream.cli.options import comma_choice, settings_from


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from bandits.factory import POLICIES

    if (value.startswith("offer:") and len(value) > len("offer:")) or value in POLICIES:
        return value
    raise click.BadParameter(
        f"{value!r}: give offer:NAME or a policy ({', '.join(sorted(POLICIES))})", ctx=ctx, param=param
    )


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def render(result: dict[str, Any]) -> str:
    """The readable table printed without ``--json``."""
    level = f"{100 * result['ci_level']:g}%"
    lines = [
        f"target {result['target']} on {result['format']} log {result['source']}",
        f"{result['n']} rounds ({result['unresolved']} unresolved decisions left out); seed {result['seed']}, "
        f"{result['bootstrap']} bootstrap resamples",
        "",
        f"{'estimator':<10} {'value':>12} {level + ' interval':>28}",
    ]
    rows = [("logged", result["on_policy"]), *result["estimates"].items()]
    for name, e in rows:
        ci = f"[{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}]" if e.get("ci") else "-"
        lines.append(f"{name:<10} {_fmt(e['value']):>12} {ci:>28}")
    if "replay_matches" in result:
        lines.append(f"\nreplay matched {result['replay_matches']} rounds (reward sum {result['replay_reward_sum']:g})")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN (an undefined estimate) becomes null: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@click.command()
@click.option("--format", "fmt", type=click.Choice(["ours", "obd"]), required=True, help="Log format.")
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="ours: decision and reward JSONL[.gz] files (repeat --log); obd: one Open Bandit Dataset CSV.",
)
@click.option(
    "--item-context",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="obd: the campaign's item_context.csv (default: the one next to the log).",
)
@click.option(
    "--target",
    required=True,
    callback=_target,
    help="Policy to evaluate: uniform, a policy name (built from the settings), or offer:NAME (always NAME).",
)
@click.option(
    "--estimators",
    default=",".join(ESTIMATORS),
    show_default=True,
    callback=comma_choice(tuple(ESTIMATORS)),
    help="Comma-separated estimators.",
)
@click.option("--seed", type=int, default=None, help="Seeds the target's choices and the bootstrap (settings: seed).")
@click.option(
    "--bootstrap",
    "resamples",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the 95% intervals (0: no intervals).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def ope(
    ctx: click.Context,
    fmt: str,
    logs: tuple[str, ...],
    item_context: str | None,
    target: str,
    estimators: tuple[str, ...],
    seed: int | None,
    resamples: int,
    as_json: bool,
) -> None:
    """Estimate what TARGET would have earned on logged decisions: IPW, SNIPW, DR and replay, with intervals.

    \b
    ours: decisions and rewards written by `offerstream replay` or the worker, joined on decision_id;
          the value is the mean logged reward (profit) per decision.
    obd:  a CSV of the Open Bandit Dataset (make setup installs the 10k-row sample); the value is the
          click rate. Every item of the campaign is eligible; the context is the one-hot user features
          and position, which also become the linear policies' context terms.
    Learning targets are scored by progressive validation (see bandits/ope/evaluate.py).

    \b
    Example:
      offerstream ope --format obd --log .venv/lib/python3.11/site-packages/obp/dataset/obd/bts/all/all.csv \\
        --target uniform --json
    """
    from bandits.errors import OpeError
    from bandits.ope.evaluate import evaluate
    from bandits.ope.logged_rounds import read_obd, read_ours

    settings = settings_from(ctx, seed=seed)
    try:
        if fmt == "obd":
            if len(logs) != 1:
                raise OpeError("--format obd takes exactly one --log CSV")
            rounds = read_obd(logs[0], item_context)
            context = rounds.feature_names()
        else:
            rounds = read_ours(logs)
            context = None
        result = evaluate(
            rounds,
            target,
            settings.policy,
            estimators=estimators,
            seed=settings.seed,
            resamples=resamples,
            context=context,
        )
    except OpeError as exc:
        raise click.ClickException(str(exc)) from None
    result = {"format": fmt, "source": rounds.source} | result
    if as_json:
        click.echo(orjson.dumps(_json_safe(result)).decode())
    else:
        click.echo(render(result))
