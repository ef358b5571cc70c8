"""The strategy lab's loop: the same stream, day by day, through every strategy; figures per day and a verdict.

For each day, in order, every strategy is shown the day (:meth:`Strategy.observe`), forecasts its decisions
(scored here against what the sessions did: AUC with a DeLong 95 % interval, log loss, calibration error), then
trains at midnight (rows, CPU seconds, peak memory). A day a strategy has no model yet (a snapshot before its
first night) has no quality figures.

The comparison uses the days on which every strategy forecast and both outcomes occurred. The strategy with
the lowest mean daily log loss is the most accurate; each other strategy's paired daily difference to it gets
a 95 % interval (normal, over days), and the recommendation names the cheapest strategy (training CPU) whose
interval does not exclude "as good as the best": same accuracy as far as this data can tell, for less compute.
A model is recommended only if it beats the ``base_rate`` strategy (knowing nothing) beyond noise, when the lab
ran it (it does by default); where none does, the verdict says to run none. The verdict is one sentence (what
to run, why, at what cost: :func:`verdict`); the reasoning behind it follows (:func:`recommendation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from bandits.offers import Offer, default_catalogue
from models.history.sampling import DEFAULT_TIERS, Tier, format_tiers, uniform
from models.snapshots.quality import auc_summary, ece, log_loss
from models.snapshots.retrain import NIGHTLY_PARAMS
from models.snapshots.training import TrainParams
from stream.engine.settings import ProcessingSettings
from stream.lab.rows import LabRows
from stream.lab.strategies import STRATEGIES, Day, Online, Strategy, days_of, make_strategy

Z95 = 1.959964
BASE_RATE = "base_rate"  # the strategy that knows nothing (stream.lab.strategies.BaseRate)
LAB_PARAMS = replace(NIGHTLY_PARAMS, nthread=1)


@dataclass(frozen=True)
class LabConfig:
    strategies: tuple[str, ...] = tuple(STRATEGIES)
    seed: int = 0
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    # one XGBoost thread: a night's rows are few, the strategies train one after another, and CPU seconds of
    # one thread compare cleanly (OpenMP threads spinning on a busy machine inflate them)
    params: TrainParams = field(default=LAB_PARAMS)
    probe_days: int = 7  # the forgetting probe: sessions of the first days ...
    probe_rate: float = 0.2  # ... this share of them (by session id), held out of every strategy's training
    window_days: int = 7  # around each marked change: this many days before and after are compared
    retrain_every: int = 1  # nights between snapshot trainings (1: nightly, 7: weekly)
    retrain_on_drift: bool = False  # also the night after the drift watch raised an alarm
    # the drift watch ignores sessions closed this long after the stream's first decision, as the worker does
    drift_warmup_days: float = ProcessingSettings.model_fields["drift_warmup_days"].default
    offers: tuple[Offer, ...] = field(default_factory=default_catalogue)  # what a price model chooses among
    margin: float = 0.30  # gross margin, for the value at stake of each offer


def probe_rows(rows: LabRows, config: LabConfig) -> npt.NDArray[np.bool_]:
    """The forgetting probe: a seeded share of the sessions decided in the first ``probe_days`` days (at most the
    first quarter of the run), held out of every strategy's training and forecast every night after."""
    held_out = np.zeros(rows.n, dtype=bool)
    if rows.n == 0 or config.probe_rate <= 0.0 or config.probe_days <= 0:
        return held_out
    days = rows.decision_days()
    span = int(days.max()) - int(days.min()) + 1
    last = int(days.min()) + min(config.probe_days, max(1, span // 4)) - 1  # at most a quarter of the run
    for i in np.flatnonzero(days <= last):
        held_out[i] = uniform(config.seed, "probe:" + rows.session_ids[i]) < config.probe_rate
    return held_out


def quality(p: np.ndarray | None, y: np.ndarray) -> dict[str, Any]:
    """A day's forecast quality; every figure None without a forecast (or AUC None with a single outcome)."""
    if p is None or len(y) == 0:
        return {"auc": None, "auc_lo95": None, "auc_hi95": None, "logloss": None, "ece": None, "mean_p": None}
    auc = auc_summary(p, y)
    return {
        "auc": _r(auc["auc"]),
        "auc_lo95": _r(auc["lo95"]),
        "auc_hi95": _r(auc["hi95"]),
        "logloss": _r(log_loss(p, y)),
        "ece": _r(ece(p, y)),
        "mean_p": _r(float(p.mean())),
    }


def run_backtest(
    rows: LabRows,
    config: LabConfig,
    on_day: Callable[[Day], None] | None = None,
    markers: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Run every strategy of ``config`` over ``rows``; the results as ``results.json`` holds them.

    ``markers`` are known changes (``{"day": ISO date, "label": ...}``, e.g. a simulated shift): the days around
    each are compared separately (``periods``).
    """
    held_out = probe_rows(rows, config)
    probe = np.flatnonzero(held_out)
    probe_end = rows.day_of(int(rows.decision_ms[probe].max())) if len(probe) else None
    strategies: list[Strategy] = [
        make_strategy(name, rows, config.seed, config.params, config.tiers, held_out, config.retrain_every)
        for name in config.strategies
    ]
    daily: dict[str, list[dict[str, Any]]] = {s.name: [] for s in strategies}
    probed: dict[str, list[dict[str, Any]]] = {s.name: [] for s in strategies}
    # the drift watch: the worker's intent learner and its ADWIN, silent while the history features warm up
    watch = Online(rows, config.seed, held_out, config.drift_warmup_days)
    for day in days_of(rows):
        y = rows.y[day.decided]
        alarms = len(watch.drift_alarm_ms)
        watch.predict(day)  # learns the day's closed sessions in time order
        drifted = len(watch.drift_alarm_ms) > alarms
        if drifted and config.retrain_on_drift:
            for s in strategies:
                s.request_retrain()
        for s in strategies:
            s.observe(day)
            entry: dict[str, Any] = {"day": day.day.isoformat(), "n": len(y), "positives": int(y.sum())}
            entry |= quality(s.predict(day), y)
            if rows.truth is not None:
                entry |= decision_value(s, rows, day.decided, config)
            elif rows.weights is not None:
                entry |= ope_value(s, rows, day.decided, config)
            trained = s.nightly(day)
            entry |= {
                "train_rows": trained.rows if trained else 0,
                "train_cpu_s": round(trained.cpu_s, 4) if trained else 0.0,
                "train_peak_mb": trained.peak_mb if trained else None,
                "trees": trained.trees if trained else None,
            }
            daily[s.name].append(entry)
            if probe_end is not None and day.day >= probe_end:  # the probe's sessions are all in the past
                p = quality(s.probe(probe), rows.y[probe])
                probed[s.name].append({"day": day.day.isoformat(), "auc": p["auc"], "logloss": p["logloss"]})
        if on_day is not None:
            on_day(day)
    common = _common_days(daily)
    summaries = {name: _summary(days, common) for name, days in daily.items()}
    comparison = compare(daily, common, summaries)
    periods = compare_periods(daily, markers, config.window_days)
    forgotten = {s.name: forgetting(probed[s.name], len(probe), int(rows.y[probe].sum())) for s in strategies}
    return {
        "source": {
            "events": rows.events,
            "rows": rows.n,
            "unlabelled_sessions": rows.unlabelled,
            "events_digest": rows.digest,
        },
        "config": {
            "strategies": list(config.strategies),
            "seed": config.seed,
            "tiers": format_tiers(config.tiers),
            "retrain_every_nights": config.retrain_every,
            "retrain_on_drift": config.retrain_on_drift,
            "drift_warmup_days": config.drift_warmup_days,
            "xgboost": {
                "max_depth": config.params.max_depth,
                "eta": config.params.eta,
                "num_rounds": config.params.num_rounds,
                "warm_rounds": config.params.warm_rounds,
                "warm_rows_per_round": config.params.warm_rows_per_round,
                "warm_min_rows": config.params.warm_min_rows,
                "max_trees": config.params.max_trees,
            },
        },
        "strategies": {
            s.name: {
                "daily": daily[s.name],
                "summary": summaries[s.name],
                "forgetting": forgotten[s.name],
                "leaks": s.leaks,
                "stream_digest": s.stream_digest,
            }
            for s in strategies
        },
        "probe": {
            "days": config.probe_days,
            "rate": config.probe_rate,
            "rows": len(probe),
            "last_decision_day": probe_end.isoformat() if probe_end else None,
        },
        "markers": [dict(m) for m in markers],
        "periods": periods,
        "drift_alarms": [{"day": rows.day_of(ms).isoformat(), "ts_ms": ms} for ms in watch.drift_alarm_ms],
        "comparison": comparison,
        "verdict": verdict(comparison, summaries),
        "recommended": recommended(comparison, summaries),
        "recommendation": recommendation(comparison, summaries, periods, forgotten),
    }


def forgetting(days: Sequence[dict[str, Any]], n: int, positives: int) -> dict[str, Any]:
    """How the strategy's quality on the held-out early sessions moved once it had seen them all go by.

    ``forgetting`` is the last night's probe log loss minus the best night's (0: nothing forgotten);
    ``peak_forgetting`` the worst night's minus the best's.
    """
    losses = [d["logloss"] for d in days if d["logloss"] is not None]
    if not losses:
        return {"rows": n, "positives": positives, "daily": list(days), "forgetting": None, "peak_forgetting": None}
    best = min(losses)
    return {
        "rows": n,
        "positives": positives,
        "daily": list(days),
        "best_logloss": round(best, 6),
        "final_logloss": round(losses[-1], 6),
        "forgetting": round(losses[-1] - best, 6),
        "peak_forgetting": round(max(losses) - best, 6),
    }


def compare_periods(
    daily: dict[str, list[dict[str, Any]]], markers: Sequence[Mapping[str, str]], window_days: int
) -> list[dict[str, Any]]:
    """For each marked change, the ``window_days`` before it and from it on, compared like the whole run (over
    the days of each window on which every strategy forecast)."""
    out = []
    for mark in markers:
        at = date.fromisoformat(mark["day"])
        for when, lo, hi in (
            ("before", at - timedelta(days=window_days), at),
            ("from", at, at + timedelta(days=window_days)),
        ):
            span = {name: [d for d in days if lo <= date.fromisoformat(d["day"]) < hi] for name, days in daily.items()}
            common = _common_days(span)
            if not common:
                continue
            summaries = {name: _summary(days, common) for name, days in span.items()}
            out.append(
                {
                    "label": mark["label"],
                    "when": when,
                    "from": common[0],
                    "to": common[-1],
                    "strategies": {n: {k: m[k] for k in ("auc", "logloss", "ece")} for n, m in summaries.items()},
                    "comparison": compare(span, common, summaries),
                    "lag_of_full": _lag_of_full(span, common) if when == "from" else {},
                }
            )
    return out


def _lag_of_full(span: dict[str, list[dict[str, Any]]], common: Sequence[str]) -> dict[str, Any]:
    """Right after a change: ``full``'s daily log loss minus ``online``'s and ``hybrid``'s, paired, with intervals
    (what a nightly retrain on all history is expected to lose to strategies that follow the stream)."""
    if "full" not in span or len(common) < 2:
        return {}
    by_day = {name: {d["day"]: d["logloss"] for d in days} for name, days in span.items()}
    return {
        f"vs_{other}": paired_interval(np.array([by_day["full"][d] - by_day[other][d] for d in common]))
        for other in ("online", "hybrid")
        if other in span
    }


def expectations(periods: Sequence[dict[str, Any]], forgotten: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """The two behaviours the lab is built to show, checked against this run's numbers, either way."""
    lines = []
    f = {n: v["forgetting"] for n, v in (forgotten or {}).items() if v.get("forgetting") is not None}
    fine_tuned, retrained = [n for n in ("warm", "online") if n in f], [n for n in ("sampled", "hybrid") if n in f]
    if fine_tuned and retrained:
        holds = min(f[n] for n in fine_tuned) > max(f[n] for n in retrained)
        lines.append(
            "Expected: warm and online forget more than sampled and hybrid. "
            + ("Observed: they do" if holds else "Observed: not on this data")
            + f" ({', '.join(f'{n} {f[n]:+.4f}' for n in fine_tuned + retrained)})."
        )
    for period in periods:
        lag = period.get("lag_of_full") or {}
        for key, d in lag.items():
            other = key.removeprefix("vs_")
            verdict = (
                "a lag" if d["lo95"] > 0 else "full ahead" if d["hi95"] < 0 else "no lag distinguishable from noise"
            )
            lines.append(
                f"Expected: full lags {other} after {period['label']}. Observed over {period['from']} to "
                f"{period['to']}: full − {other} {d['mean']:+.4f} (95% CI {d['lo95']:+.4f} to {d['hi95']:+.4f}), "
                f"{verdict}."
            )
    return lines


def _common_days(daily: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Days every strategy forecast with both outcomes present (AUC defined for all)."""
    per_strategy = [{d["day"] for d in days if d["auc"] is not None} for days in daily.values()]
    return sorted(set.intersection(*per_strategy)) if per_strategy else []


def _summary(days: Sequence[dict[str, Any]], common: Sequence[str]) -> dict[str, Any]:
    compared = set(common)
    on = [d for d in days if d["day"] in compared]
    peaks = [d["train_peak_mb"] for d in days if d["train_peak_mb"] is not None]
    return {
        "days_compared": len(on),
        "auc": _r(_mean([d["auc"] for d in on])),
        "logloss": _r(_mean([d["logloss"] for d in on])),
        "ece": _r(_mean([d["ece"] for d in on])),
        "train_cpu_s": round(sum(d["train_cpu_s"] for d in days), 3),
        "train_rows": int(sum(d["train_rows"] for d in days)),
        "train_peak_mb": max(peaks) if peaks else None,
    } | _profit_summary(on)


def _profit_summary(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over the compared days: the decision value as a share of the oracle's profit (simulated price rows), or the
    off-policy value per decision with a day-bootstrap 95 % interval (recorded price rows)."""
    estimated = [d for d in days if d.get("ope_num") is not None]
    if estimated:
        num = np.array([d["ope_num"] for d in estimated])
        den = np.array([d["ope_den"] for d in estimated])
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(estimated), size=(1000, len(estimated)))
        boot = num[picks].sum(axis=1) / np.maximum(den[picks].sum(axis=1), 1e-12)
        decisions = sum(d["decisions"] for d in estimated)
        return {
            "ope_value": _r(float(num.sum() / den.sum()), 4) if den.sum() > 0 else None,
            "ope_value_ci": [_r(float(np.percentile(boot, 2.5)), 4), _r(float(np.percentile(boot, 97.5)), 4)],
            "logged_value": _r(sum(d["logged_reward"] for d in estimated) / decisions, 4) if decisions else None,
        }
    valued = [d for d in days if d.get("profit") is not None]
    if not valued:
        return {}
    oracle = sum(d["oracle_profit"] for d in valued)
    profit, none = sum(d["profit"] for d in valued), sum(d["none_profit"] for d in valued)
    return {
        "profit": round(profit, 2),
        "profit_fraction": _r(profit / oracle, 4) if oracle > 0 else None,
        "none_fraction": _r(none / oracle, 4) if oracle > 0 else None,  # always showing nothing, same days
    }


def _choices(s: Strategy, rows: LabRows, idx: npt.NDArray[np.int64], config: LabConfig) -> npt.NDArray[np.int64] | None:
    """The offer (index into ``config.offers``) the strategy's price model values most at each decision point:
    the highest ``P(buy | x, offer) × (margin × cart − cost)``, the worker's value at stake. None without a model."""
    names = rows.feature_names
    X = rows.X[idx]
    cart = np.nan_to_num(X[:, names.index("cart_value")].astype(np.float64))
    values = []
    for offer in config.offers:
        Xo = X.copy()
        Xo[:, names.index("offer_share")] = offer.share
        Xo[:, names.index("offer_flat")] = 1.0 if offer.flat_fee > 0 else 0.0
        p = s.score(Xo)
        if p is None:
            return None
        values.append(p * (config.margin * cart - (offer.share * cart + offer.flat_fee)))
    if not len(idx):
        return np.zeros(0, dtype=np.int64)
    return np.argmax(np.stack(values, axis=1), axis=1).astype(np.int64)


def decision_value(s: Strategy, rows: LabRows, idx: npt.NDArray[np.int64], config: LabConfig) -> dict[str, Any]:
    """What the strategy's price model would earn choosing the offers at the day's decision points.

    At each logged decision point the model's choice (:func:`_choices`) earns the simulator's expected profit of
    that offer there (``profit``), against the best offer's (``oracle_profit``) and showing nothing
    (``none_profit``). A counterfactual choice at the recorded decision points, not a closed loop: the choices
    do not change the shoppers the run saw.
    """
    truth = rows.truth
    assert truth is not None
    chosen = _choices(s, rows, idx, config)
    if chosen is None:
        return {"profit": None, "oracle_profit": None, "none_profit": None}
    picks = [config.offers[int(c)].name for c in chosen]
    return {
        "profit": round(sum(truth[i][o] for i, o in zip(idx, picks, strict=True)), 4),
        "oracle_profit": round(sum(max(truth[i].values()) for i in idx), 4),
        "none_profit": round(sum(truth[i].get("none", 0.0) for i in idx), 4),
    }


def ope_value(s: Strategy, rows: LabRows, idx: npt.NDArray[np.int64], config: LabConfig) -> dict[str, Any]:
    """On recorded decisions (no simulator truth): the parts of a self-normalised IPW estimate of the profit per
    decision of the strategy's greedy policy (:func:`_choices`).

    A decision's reward is its session's purchase times the logged offer's value at stake (margin × cart at the
    decision − the offer's cost); a decision counts where the policy would have shown the logged offer, weighted
    by 1 / logged propensity: ``ope_num`` = Σ w·r and ``ope_den`` = Σ w over those, ``logged_reward`` = Σ r and
    ``decisions`` over all, so days add up.
    """
    assert rows.weights is not None
    chosen = _choices(s, rows, idx, config)
    if chosen is None:
        return {"ope_num": None, "ope_den": None, "logged_reward": None, "decisions": len(idx)}
    names = rows.feature_names
    X = rows.X[idx]
    cart = np.nan_to_num(X[:, names.index("cart_value")].astype(np.float64))
    terms = [(round(o.share, 6), 1.0 if o.flat_fee > 0 else 0.0) for o in config.offers]
    shown = [
        (round(float(sh), 6), float(fl)) for sh, fl in X[:, [names.index("offer_share"), names.index("offer_flat")]]
    ]
    logged = np.array([terms.index(t) if t in terms else -1 for t in shown], dtype=np.int64)
    cost = np.array(
        [
            config.offers[k].share * c + config.offers[k].flat_fee if k >= 0 else 0.0
            for k, c in zip(logged, cart, strict=True)
        ]
    )
    reward = rows.y[idx] * (config.margin * cart - cost)
    match = (chosen == logged) & (logged >= 0)
    w = rows.weights[idx]
    return {
        "ope_num": round(float((w * reward)[match].sum()), 4),
        "ope_den": round(float(w[match].sum()), 4),
        "logged_reward": round(float(reward.sum()), 4),
        "decisions": len(idx),
    }


def compare(
    daily: dict[str, list[dict[str, Any]]], common: Sequence[str], summaries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The most accurate strategy (mean daily log loss) and every other's paired difference to it."""
    if len(common) < 2:
        return {"best": None, "days": len(common), "versus_best": {}}
    by_day = {name: {d["day"]: d for d in days} for name, days in daily.items()}
    best = min(summaries, key=lambda n: summaries[n]["logloss"])
    versus = {}
    for name in summaries:
        if name == best:
            continue
        diff = np.array([by_day[name][d]["logloss"] - by_day[best][d]["logloss"] for d in common])
        auc_diff = np.array([by_day[name][d]["auc"] - by_day[best][d]["auc"] for d in common])
        versus[name] = {"logloss_diff": paired_interval(diff), "auc_diff": paired_interval(auc_diff)}
    out: dict[str, Any] = {"best": best, "days": len(common), "versus_best": versus}
    if BASE_RATE in summaries:  # every model's paired daily log loss against knowing nothing
        out["versus_base_rate"] = {
            name: paired_interval(
                np.array([by_day[name][d]["logloss"] - by_day[BASE_RATE][d]["logloss"] for d in common])
            )
            for name in summaries
            if name != BASE_RATE
        }
    if all(summaries[n].get("profit_fraction") is not None for n in summaries):
        out["decision_value"] = _compare_value(by_day, common, summaries)
    return out


def _compare_value(
    by_day: Mapping[str, Mapping[str, dict[str, Any]]], common: Sequence[str], summaries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The strategy whose choices earn most, and every other's paired daily difference in share of the oracle."""
    best = max(summaries, key=lambda n: summaries[n]["profit_fraction"])

    def share(name: str, day: str) -> float:
        d = by_day[name][day]
        return float(d["profit"] / d["oracle_profit"]) if d["oracle_profit"] else 0.0

    versus = {
        name: paired_interval(np.array([share(name, d) - share(best, d) for d in common]))
        for name in summaries
        if name != best
    }
    return {"best": best, "versus_best": versus}


# A strategy as accurate as the best within the noise is preferred for its compute only when it trains for at
# most this share of the best's CPU: training CPU seconds measured on a shared machine move by several per cent
# from run to run, so a 1 % saving (21.8 against 22.1 s, measured) would pick a winner by chance.
CHEAPER_BY = 0.8


def recommended(comparison: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The strategy to run: of those within the noise of the most accurate that beat the base rate beyond noise
    (when the lab ran it), the cheapest (training CPU), if it trains for at most :data:`CHEAPER_BY` of the most
    accurate's CPU, else the most accurate; None when there is nothing to compare or no model beats knowing
    nothing."""
    best = comparison["best"]
    if best is None:
        return None
    tied = [best] + [n for n, v in comparison["versus_best"].items() if v["logloss_diff"]["lo95"] <= 0.0]
    against = comparison.get("versus_base_rate")
    if against is not None:
        tied = [n for n in tied if n != BASE_RATE and against[n]["hi95"] < 0.0]
    if not tied:
        return None
    cpu = {n: summaries[n]["train_cpu_s"] for n in tied}
    cheapest = min(tied, key=cpu.__getitem__)
    if best in tied and cpu[cheapest] > CHEAPER_BY * cpu[best]:
        return best
    return cheapest


def verdict(comparison: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The answer in one sentence: what to run, why, at what cost (the reasoning: :func:`recommendation`)."""
    best, days = comparison["best"], comparison["days"]
    if best is None:
        return f"Too few days to compare ({days} with every strategy forecasting and both outcomes): run it longer."
    run = recommended(comparison, summaries)
    base = summaries.get(BASE_RATE)
    against = f" against the base rate's {base['logloss']:.4f}" if base is not None else ""
    if run is None and best == BASE_RATE:
        return (
            f"Run no model: knowing nothing (the base rate, mean daily log loss {summaries[best]['logloss']:.4f}) "
            f"is the most accurate over these {days} days."
        )
    if run is None:
        return (
            f"Run no model: none beats predicting the base rate beyond noise over these {days} days "
            f"(the best, {best}, has a mean daily log loss of {summaries[best]['logloss']:.4f}{against})."
        )
    cpu = summaries[run]["train_cpu_s"]
    if run == best:
        return (
            f"Run {run}: the most accurate (mean daily log loss {summaries[run]['logloss']:.4f}{against}), and "
            f"nothing within its noise trains for less ({cpu:.1f} CPU s of training over {days} days)."
        )
    cpu_best = summaries[best]["train_cpu_s"]
    and_base = f"; the base rate {base['logloss']:.4f}" if base is not None else ""
    ratio = f"{cpu_best / cpu:.1f}× less" if cpu > 0 else "none at all"
    return (
        f"Run {run}: as accurate as {best} within the noise (log loss {summaries[run]['logloss']:.4f} against "
        f"{summaries[best]['logloss']:.4f}{and_base}) for {cpu:.1f} "
        f"CPU s of training over {days} days against {cpu_best:.1f} ({ratio})."
    )


def recommendation(
    comparison: dict[str, Any],
    summaries: dict[str, dict[str, Any]],
    periods: Sequence[dict[str, Any]] = (),
    forgotten: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The reasoning behind the :func:`verdict`: every strategy against the best and the base rate, what each
    model's choices are worth, forgetting, and the days around each marked change."""
    best = comparison["best"]
    if best is None:
        return verdict(comparison, summaries)
    s_best = summaries[best]
    lines = [
        f"Most accurate on this data: {best} (mean daily log loss {s_best['logloss']:.4f}, AUC {s_best['auc']:.3f}, "
        f"over {comparison['days']} days)."
    ]
    for name, v in sorted(comparison["versus_best"].items(), key=lambda kv: kv[1]["logloss_diff"]["mean"]):
        d = v["logloss_diff"]
        tie = "not distinguishable from it" if d["lo95"] <= 0.0 else "worse"
        lines.append(f"{name}: log loss {d['mean']:+.4f} (95% CI {d['lo95']:+.4f} to {d['hi95']:+.4f}), {tie}.")
    against = comparison.get("versus_base_rate")
    if against:
        listed = ", ".join(
            f"{n} {d['mean']:+.4f} ({d['lo95']:+.4f} to {d['hi95']:+.4f}, {'beats it' if d['hi95'] < 0 else 'no'})"
            for n, d in sorted(against.items(), key=lambda kv: kv[1]["mean"])
        )
        lines.append(f"Against the base rate (knowing nothing; a model must beat it to be worth running): {listed}.")
    lines.append(f"Recommendation: {verdict(comparison, summaries)}")
    valued = {n: m["profit_fraction"] for n, m in summaries.items() if m.get("profit_fraction") is not None}
    if valued:
        listed = ", ".join(f"{n} {v:.4f}" for n, v in sorted(valued.items(), key=lambda kv: -kv[1]))
        none = next(m["none_fraction"] for m in summaries.values() if m.get("none_fraction") is not None)
        lines.append(
            "Decision value (the offer each price model would choose at the logged decision points, valued by the "
            f"simulator's expected profit, as a share of the best offer's): {listed}; "
            f"always showing nothing {none:.4f}."
        )
        value = comparison.get("decision_value")
        if value is not None:
            behind = ", ".join(
                f"{n} {d['mean']:+.4f} ({d['lo95']:+.4f} to {d['hi95']:+.4f}, {'worse' if d['hi95'] < 0 else 'a tie'})"
                for n, d in sorted(value["versus_best"].items(), key=lambda kv: -kv[1]["mean"])
            )
            lines.append(f"Daily share of the oracle against {value['best']}'s (95% CI): {behind}.")
    estimated = {n: m for n, m in summaries.items() if m.get("ope_value") is not None}
    if estimated:
        listed = ", ".join(
            f"{n} {m['ope_value']:.2f} [{m['ope_value_ci'][0]:.2f}, {m['ope_value_ci'][1]:.2f}]"
            for n, m in sorted(estimated.items(), key=lambda kv: -kv[1]["ope_value"])
        )
        logged = next(iter(estimated.values()))["logged_value"]
        lines.append(
            "Off-policy value of each price model's choices (self-normalised IPW on the logged decisions, profit "
            f"per decision, day-bootstrap 95% interval): {listed}; the logging policy earned {logged:.2f}."
        )
    measured = {n: f["forgetting"] for n, f in (forgotten or {}).items() if f.get("forgetting") is not None}
    if measured:
        listed = ", ".join(f"{n} {v:+.4f}" for n, v in sorted(measured.items(), key=lambda kv: kv[1]))
        lines.append(f"Forgetting (probe log loss, last night minus best night): {listed}.")
    lines += expectations(periods, forgotten)
    for period in periods:
        c = period["comparison"]
        if c["best"] is None:
            continue
        diffs = sorted(((n, v["logloss_diff"]) for n, v in c["versus_best"].items()), key=lambda kv: kv[1]["mean"])
        behind = ", ".join(
            f"{n} {d['mean']:+.4f} ({d['lo95']:+.4f} to {d['hi95']:+.4f}, {'worse' if d['lo95'] > 0 else 'a tie'})"
            for n, d in diffs
        )
        lines.append(
            f"{c['days']} days {period['when']} {period['label']} ({period['from']} to {period['to']}): "
            f"{c['best']} most accurate; log loss behind it (95% CI): {behind}."
        )
    return " ".join(lines)


def paired_interval(x: np.ndarray) -> dict[str, float]:
    """Mean of paired differences with a normal 95 % interval (infinite with one pair)."""
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.inf
    return {"mean": round(mean, 6), "lo95": round(mean - half, 6), "hi95": round(mean + half, 6)}


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), digits)
