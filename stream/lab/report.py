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


def plots(result: Mapping[str, Any]) -> dict[str, str]:
    """The report's plots as SVG text, by name."""
    plt = _pyplot()
    strategies = result["strategies"]
    out: dict[str, str] = {}
    for key, title, ylabel, log in (
        ("logloss", "Log loss of the day's forecasts (lower is better)", "log loss", False),
        ("auc", "AUC of the day's forecasts (higher is better)", "AUC", False),
        ("train_cpu", "Training CPU per night (online: during the day)", "CPU seconds", True),
    ):
        field = "train_cpu_s" if key == "train_cpu" else key
        fig, ax = plt.subplots(figsize=(9, 3.6))
        for name, s in strategies.items():
            days = [date.fromisoformat(d["day"]) for d in s["daily"] if d[field] is not None]
            values = [d[field] for d in s["daily"] if d[field] is not None]
            if log:  # a night without training has nothing to draw on a log scale
                kept = [(d, v) for d, v in zip(days, values, strict=True) if v > 0]
                days, values = [d for d, _ in kept], [v for _, v in kept]
            ax.plot(days, values, label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)
        if log:
            ax.set_yscale("log")
        _marks(ax, result)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=len(strategies), loc="best")
        fig.autofmt_xdate()
        out[key] = _svg(fig, plt)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, (days, gaps) in logloss_gaps(result).items():
        ax.plot(days, gaps, label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)
    _marks(ax, result)
    ax.set_title("Log loss above the day's most accurate strategy (0: the best that day)", fontsize=10)
    ax.set_ylabel("log loss − day's best")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=len(strategies), loc="best")
    fig.autofmt_xdate()
    out["logloss_gap"] = _svg(fig, plt)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, s in strategies.items():
        probe = [d for d in s["forgetting"]["daily"] if d["logloss"] is not None]
        ax.plot([date.fromisoformat(d["day"]) for d in probe], [d["logloss"] for d in probe], label=name,
                color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)  # fmt: skip
    _marks(ax, result)
    probe_info = result["probe"]
    ax.set_title(
        f"Forgetting: log loss on {probe_info['rows']} held-out sessions of the first days (up to "
        f"{probe_info['last_decision_day']}), each night",
        fontsize=10,
    )
    ax.set_ylabel("probe log loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=len(strategies), loc="best")
    fig.autofmt_xdate()
    out["forgetting"] = _svg(fig, plt)
    price = result.get("price")
    if price is not None and any(d.get("profit") is not None for s in price["strategies"].values() for d in s["daily"]):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        for name, s in price["strategies"].items():
            valued = [d for d in s["daily"] if d.get("profit") is not None and d["oracle_profit"] > 0]
            ax.plot([date.fromisoformat(d["day"]) for d in valued], [d["profit"] / d["oracle_profit"] for d in valued],
                    label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)  # fmt: skip
        any_strategy = next(iter(price["strategies"].values()))["daily"]
        base = [d for d in any_strategy if d.get("none_profit") is not None and d["oracle_profit"] > 0]
        ax.plot([date.fromisoformat(d["day"]) for d in base], [d["none_profit"] / d["oracle_profit"] for d in base],
                label="always nothing", color="grey", linestyle=":", linewidth=1.2)  # fmt: skip
        _marks(ax, result)
        ax.set_title("Decision value: the price model's chosen offers, share of the best offer's profit", fontsize=10)
        ax.set_ylabel("profit / oracle")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=len(price["strategies"]) + 1, loc="best")
        fig.autofmt_xdate()
        out["decision_value"] = _svg(fig, plt)
    if price is not None and any(
        d.get("ope_num") is not None for s in price["strategies"].values() for d in s["daily"]
    ):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        for name, s in price["strategies"].items():
            days, values, num, den = [], [], 0.0, 0.0
            for d in s["daily"]:
                if d.get("ope_num") is None:
                    continue
                num, den = num + d["ope_num"], den + d["ope_den"]
                if den > 0:
                    days.append(date.fromisoformat(d["day"]))
                    values.append(num / den)
            ax.plot(days, values, label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)
        _marks(ax, result)
        ax.set_title(
            "Off-policy value of each price model's choices, cumulative (SNIPW, profit per decision)", fontsize=10
        )
        ax.set_ylabel("profit per decision")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=len(price["strategies"]), loc="best")
        fig.autofmt_xdate()
        out["ope_value"] = _svg(fig, plt)
    loops = result.get("closed_loop")
    if loops is not None:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        for name, run in loops["strategies"].items():
            days, shares, profit, oracle = [], [], 0.0, 0.0
            for d in run["daily"]:
                profit, oracle = profit + d["profit"], oracle + d["oracle_profit"]
                if oracle > 0:
                    days.append(date.fromisoformat(d["day"]))
                    shares.append(profit / oracle)
            ax.plot(days, shares, label=name, color=COLOURS.get(name), linewidth=1.4, marker=".", markersize=3)
        _marks(ax, result)
        ax.set_title(
            "Closed loop: cumulative profit each strategy's own run realised, share of the oracle's", fontsize=10
        )
        ax.set_ylabel("cumulative profit / oracle")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=len(loops["strategies"]), loc="best")
        fig.autofmt_xdate()
        out["closed_loop"] = _svg(fig, plt)
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
<p id="price-recommendation">{html.escape(price["recommendation"])}</p>
{_table(SUMMARY_HEADER, summary_rows(price), "price-summary")}
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
<p id="recommendation">{html.escape(result["recommendation"])}</p>
<h2>Summary</h2>
{_table(SUMMARY_HEADER, summary_rows(result), "summary")}
<p class="note">Means over the {comparison["days"]} days on which every strategy forecast and both outcomes occurred.
Against the most accurate ({html.escape(str(comparison["best"]))}), paired daily differences with a 95% interval
(normal, over days):</p>
{_table(("strategy", "log loss diff", "95% CI", "AUC diff", "95% CI"), versus, "versus")}
<p class="note">Forgetting: the last night's log loss on the probe (a seeded {100 * result["probe"]["rate"]:g}% of the
sessions of the first days, which no strategy trains on) minus its best night's.</p>
{around_html}
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
