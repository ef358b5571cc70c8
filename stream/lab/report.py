"""The strategy lab's report: one self-contained HTML file (inline SVG plots, the results embedded) and the plots
as SVG files beside it.

Every figure in the page is read from the results dictionary that ``results.json`` holds, which is embedded
verbatim (``<script type="application/json" id="results">``), so the page and the file cannot disagree.
Plots are drawn with matplotlib (the ``lab`` extra: ``pip install 'offerstream[lab]'``): daily log loss (and
its gap to the day's most accurate strategy) and AUC per strategy, the forgetting probe, training CPU per
night, accuracy against total compute, and the decision value (the price model's choices; cumulative
off-policy value on an archive; cumulative closed-loop profit). Dashed lines mark the scenario's known changes
(a simulated shift or sale week); small ticks at the top mark the drift watch's alarms (the online intent
learner's ADWIN).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson

PLOTS = (
    "logloss", "logloss_gap", "auc", "forgetting", "train_cpu", "accuracy_vs_compute", "decision_value", "ope_value",
    "closed_loop",
)  # fmt: skip
COLOURS = {"full": "#1f77b4", "sampled": "#2ca02c", "warm": "#d62728", "online": "#9467bd", "hybrid": "#ff7f0e"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # the worker image leaves the lab's plotting out
        raise RuntimeError("the report needs matplotlib: pip install 'offerstream[lab]'") from exc
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "offerstream"  # stable ids: the same results give the same SVG
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt


Series = dict[str, tuple[list[date], list[float]]]  # strategy -> (days, values)


def _daily(days: Any, field: str, positive: bool = False) -> tuple[list[date], list[float]]:
    """One field of a strategy's daily entries, as a line (days without it left out; only > 0 with ``positive``,
    for a log scale)."""
    kept = [(date.fromisoformat(d["day"]), d[field]) for d in days if d.get(field) is not None]
    kept = [(d, v) for d, v in kept if v > 0] if positive else kept
    return [d for d, _ in kept], [v for _, v in kept]


def _cumulative(days: Any, num: str, den: str) -> tuple[list[date], list[float]]:
    """Running Σ num / Σ den over a strategy's daily entries (days without them left out)."""
    out_days, values, n, m = [], [], 0.0, 0.0
    for d in days:
        if d.get(num) is None or d.get(den) is None:
            continue
        n, m = n + d[num], m + d[den]
        if m > 0:
            out_days.append(date.fromisoformat(d["day"]))
            values.append(n / m)
    return out_days, values


def _ratio(days: Any, num: str, den: str) -> tuple[list[date], list[float]]:
    kept = [d for d in days if d.get(num) is not None and d.get(den)]
    return [date.fromisoformat(d["day"]) for d in kept], [d[num] / d[den] for d in kept]


def _line_plot(
    plt: Any, result: Mapping[str, Any], series: Series, title: str, ylabel: str, log: bool = False,
    reference: tuple[str, tuple[list[date], list[float]]] | None = None,
) -> str:  # fmt: skip
    """Daily lines per strategy, the run's marks, and an optional dotted reference line; as SVG."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, (days, values) in series.items():
        ax.plot(days, values, label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)
    if reference is not None:
        label, (days, values) = reference
        ax.plot(days, values, label=label, color="grey", linestyle=":", linewidth=1.2)
    if log:
        ax.set_yscale("log")
    _marks(ax, result)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=len(series) + (reference is not None), loc="best")
    fig.autofmt_xdate()
    return _svg(fig, plt)


def plots(result: Mapping[str, Any]) -> dict[str, str]:
    """The report's plots as SVG text, by name."""
    plt = _pyplot()
    strategies = result["strategies"]
    daily = {name: s["daily"] for name, s in strategies.items()}
    out: dict[str, str] = {}
    out["logloss"] = _line_plot(
        plt, result, {n: _daily(d, "logloss") for n, d in daily.items()},
        "Log loss of the day's forecasts (lower is better)", "log loss",
    )  # fmt: skip
    out["logloss_gap"] = _line_plot(
        plt, result, logloss_gaps(result),
        "Log loss above the day's most accurate strategy (0: the best that day)", "log loss − day's best",
    )  # fmt: skip
    out["auc"] = _line_plot(
        plt, result, {n: _daily(d, "auc") for n, d in daily.items()},
        "AUC of the day's forecasts (higher is better)", "AUC",
    )  # fmt: skip
    probe = result["probe"]
    out["forgetting"] = _line_plot(
        plt, result, {n: _daily(s["forgetting"]["daily"], "logloss") for n, s in strategies.items()},
        f"Forgetting: log loss on {probe['rows']} held-out sessions of the first days (up to "
        f"{probe['last_decision_day']}), each night", "probe log loss",
    )  # fmt: skip
    out["train_cpu"] = _line_plot(
        plt, result, {n: _daily(d, "train_cpu_s", positive=True) for n, d in daily.items()},
        "Training CPU per night (online: during the day)", "CPU seconds", log=True,
    )  # fmt: skip
    price = {name: s["daily"] for name, s in result.get("price", {}).get("strategies", {}).items()}
    if any(d.get("profit") is not None for days in price.values() for d in days):
        first = next(iter(price.values()))
        out["decision_value"] = _line_plot(
            plt, result, {n: _ratio(d, "profit", "oracle_profit") for n, d in price.items()},
            "Decision value: the price model's chosen offers, share of the best offer's profit", "profit / oracle",
            reference=("always nothing", _ratio(first, "none_profit", "oracle_profit")),
        )  # fmt: skip
    if any(d.get("ope_num") is not None for days in price.values() for d in days):
        out["ope_value"] = _line_plot(
            plt, result, {n: _cumulative(d, "ope_num", "ope_den") for n, d in price.items()},
            "Off-policy value of each price model's choices, cumulative (SNIPW, profit per decision)",
            "profit per decision",
        )  # fmt: skip
    loops = {name: run["daily"] for name, run in result.get("closed_loop", {}).get("strategies", {}).items()}
    if loops:
        out["closed_loop"] = _line_plot(
            plt, result, {n: _cumulative(d, "profit", "oracle_profit") for n, d in loops.items()},
            "Closed loop: cumulative profit each strategy's own run realised, share of the oracle's",
            "cumulative profit / oracle",
        )  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, s in strategies.items():
        m = s["summary"]
        if m["logloss"] is None:
            continue
        ax.scatter([max(m["train_cpu_s"], 1e-3)], [m["logloss"]], color=COLOURS.get(name), s=40)
        ax.annotate(name, (max(m["train_cpu_s"], 1e-3), m["logloss"]), textcoords="offset points", xytext=(5, 4))
    ax.set_xscale("log")
    ax.set_xlabel("training CPU seconds, whole run")
    ax.set_ylabel("mean daily log loss")
    ax.set_title("Accuracy against compute (lower left is better)", fontsize=10)
    ax.grid(alpha=0.3)
    out["accuracy_vs_compute"] = _svg(fig, plt)
    return out


def logloss_gaps(result: Mapping[str, Any]) -> dict[str, tuple[list[date], list[float]]]:
    """Per strategy, its daily log loss minus the lowest of that day, on days every strategy forecast.

    The day's purchase rate moves every strategy's log loss together; the gap shows who leads when.
    """
    by_day: dict[str, dict[str, float]] = {}
    for name, s in result["strategies"].items():
        for d in s["daily"]:
            if d["logloss"] is not None:
                by_day.setdefault(d["day"], {})[name] = d["logloss"]
    complete = sorted(day for day, losses in by_day.items() if len(losses) == len(result["strategies"]))
    return {
        name: (
            [date.fromisoformat(day) for day in complete],
            [by_day[day][name] - min(by_day[day].values()) for day in complete],
        )
        for name in result["strategies"]
    }


def _marks(ax: Any, result: Mapping[str, Any]) -> None:
    for mark in result.get("markers", []):
        ax.axvline(date.fromisoformat(mark["day"]), color="black", linestyle="--", linewidth=0.9)
        ax.annotate(mark["label"], (date.fromisoformat(mark["day"]), 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8)  # fmt: skip
    alarms = sorted({a["day"] for a in result.get("drift_alarms", [])})
    for day in alarms:
        ax.axvline(date.fromisoformat(day), ymin=0.96, ymax=1.0, color="crimson", linewidth=2)


def _svg(fig: Any, plt: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _fmt(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _value_cell(m: Mapping[str, Any]) -> str:
    """Decision value: the share of the oracle (simulated), else the off-policy profit per decision [95 % CI]."""
    if m.get("profit_fraction") is not None:
        return f"{m['profit_fraction']:.4f} of oracle"
    if m.get("ope_value") is not None:
        lo, hi = m["ope_value_ci"]
        return f"{m['ope_value']:.2f} [{lo:.2f}, {hi:.2f}] per decision"
    return "–"


def summary_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The summary table's cells as the page shows them (a test compares them with the JSON)."""
    rows = []
    for name, s in result["strategies"].items():
        m = s["summary"]
        rows.append(
            [
                name,
                _value_cell(m),
                str(m["days_compared"]),
                _fmt(m["auc"], ".4f"),
                _fmt(m["logloss"], ".4f"),
                _fmt(m["ece"], ".4f"),
                _fmt(m["train_cpu_s"], ".2f"),
                f"{m['train_rows']:,}",
                _fmt(m["train_peak_mb"], ".1f"),
                _fmt(s["forgetting"]["forgetting"], "+.4f"),
                str(s["leaks"]),
            ]
        )
    return rows


SUMMARY_HEADER = (
    "strategy", "decision value", "days compared", "mean AUC", "mean log loss", "mean ECE", "training CPU s",
    "rows trained", "peak training MB", "forgetting", "leaks",
)  # fmt: skip


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _behind(comparison: Mapping[str, Any]) -> str:
    diffs = sorted(((n, v["logloss_diff"]) for n, v in comparison["versus_best"].items()), key=lambda kv: kv[1]["mean"])
    return "; ".join(f"{n} {d['mean']:+.4f} [{d['lo95']:+.4f}, {d['hi95']:+.4f}]" for n, d in diffs)


def _price_section(result: Mapping[str, Any]) -> str:
    price = result.get("price")
    if price is None:
        return ""
    return f"""<h2>Price model and decision value</h2>
<p class="note">The same strategies keep a model of P(buy | session, offer shown) fresh, on the decisions the
run logged, weighted by 1 / logged propensity. "Decision value": at each
logged decision point the model scores every offer, the one with the highest P(buy) × (margin × cart − cost) is
chosen, and the simulator's expected profit of that offer there is what it earns, as a share of the best
offer's — a counterfactual choice at the recorded decision points, not a closed loop. On a recording, without
the simulator's truth, the same choices are valued off-policy: self-normalised IPW of the profit per decision
(purchase × the logged offer's value at stake), with a day-bootstrap 95% interval.</p>
<p id="price-verdict"><strong>{html.escape(price["verdict"])}</strong></p>
{_table(SUMMARY_HEADER, summary_rows(price), "price-summary")}
<p id="price-recommendation">{html.escape(price["recommendation"])}</p>
"""


def _closed_loop_section(result: Mapping[str, Any]) -> str:
    loops = result.get("closed_loop")
    if loops is None:
        return ""
    rows = [
        [name, _fmt(r["summary"]["profit_fraction"], ".4f"), _fmt(r["summary"]["none_fraction"], ".4f"),
         f"{r['summary']['decisions']:,}", _fmt(r["summary"]["train_cpu_s"], ".2f")]
        for name, r in loops["strategies"].items()
    ]  # fmt: skip
    return f"""<h2>Closed loop</h2>
<p class="note">Each strategy's price model chose the offers of its own simulated run (same seed; ε-greedy on
P(buy) × value at stake with ε = {loops["epsilon"]}, uniform before its first model), learning from its own logs.
Profit is the simulator's expected profit of the offers shown, as a share of the best offer's at the same
decision points.</p>
<p id="closed-loop-recommendation">{html.escape(loops["recommendation"])}</p>
{_table(("strategy", "share of oracle", "always nothing", "decisions", "training CPU s"), rows, "closed-loop")}
"""


def render_html(result: Mapping[str, Any], svgs: Mapping[str, str]) -> str:
    source = result["source"]
    comparison = result["comparison"]
    versus = [
        [
            name,
            f"{v['logloss_diff']['mean']:+.4f}",
            f"[{v['logloss_diff']['lo95']:+.4f}, {v['logloss_diff']['hi95']:+.4f}]",
            f"{v['auc_diff']['mean']:+.4f}",
            f"[{v['auc_diff']['lo95']:+.4f}, {v['auc_diff']['hi95']:+.4f}]",
        ]
        for name, v in comparison["versus_best"].items()
    ]
    around = [
        [
            f"{p['when']} {p['label']}",
            f"{p['from']} to {p['to']}",
            str(p["comparison"]["best"]),
            _behind(p["comparison"]),
        ]
        for p in result.get("periods", [])
        if p["comparison"]["best"] is not None
    ]
    around_html = (
        "<h2>Around the marked changes</h2>"
        + _table(("window", "days", "most accurate", "others' log loss behind it [95% CI]"), around, "periods")
        if around
        else ""
    )
    embedded = orjson.dumps(result).decode().replace("</", "<\\/")
    figures = "".join(f'<figure id="plot-{name}">{svgs[name]}</figure>' for name in PLOTS if name in svgs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>offerstream strategy lab</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} svg {{ max-width: 100%; height: auto; }}
.note {{ color: #555; font-size: 14px; }}
</style></head><body>
<h1>Strategy lab</h1>
<p class="note">{html.escape(str(source.get("described", "")))}: {source["events"]:,} events,
{source["rows"]:,} sessions labelled at a decision point ({source["unlabelled_sessions"]:,} still open at the end,
no label). Seed {result["config"]["seed"]}; recency tiers {html.escape(result["config"]["tiers"])}.</p>
<h2>Verdict</h2>
<p id="verdict"><strong>{html.escape(result["verdict"])}</strong></p>
<h2>Summary</h2>
{_table(SUMMARY_HEADER, summary_rows(result), "summary")}
<p class="note">Means over the {comparison["days"]} days on which every strategy forecast and both outcomes occurred.
Against the most accurate ({html.escape(str(comparison["best"]))}), paired daily differences with a 95% interval
(normal, over days):</p>
{_table(("strategy", "log loss diff", "95% CI", "AUC diff", "95% CI"), versus, "versus")}
<p class="note">Forgetting: the last night's log loss on the probe (a seeded {100 * result["probe"]["rate"]:g}% of the
sessions of the first days, which no strategy trains on) minus its best night's.</p>
{around_html}
<h2>Why</h2>
<p id="recommendation">{html.escape(result["recommendation"])}</p>
{_price_section(result)}
{_closed_loop_section(result)}
<h2>Plots</h2>
{figures}
<h2>How it was measured</h2>
<p class="note">The events are replayed once through the worker's state stage; every session that reached a
decision point becomes a row with its features at that moment and its label (did it buy?), known when the
session closed. Each day, every strategy forecasts the day's sessions with what it had learned before them: a
nightly snapshot trained at the latest the night before, an online learner that learns a session when it
closes. The day's figures compare those forecasts with what the sessions did; then each strategy trains for the
night. Training CPU is process time; peak memory is the resident memory added while training (Linux).
"Leaks" counts forecasts of sessions a strategy had already learned (0 means none).</p>
<script type="application/json" id="results">{embedded}</script>
</body></html>
"""


def write_report(result: Mapping[str, Any], out: Path) -> Path:
    """Write ``out/report.html`` and ``out/plots/<name>.svg``; the path of the page."""
    svgs = plots(result)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, svg in svgs.items():
        (out / "plots" / f"{name}.svg").write_text(svg)
    page = out / "report.html"
    page.write_text(render_html(result, svgs))
    return page
