"""The nightly retrain: archive → recency sample → XGBoost (scratch or warm) → champion/challenger gate → registry.

One run, :func:`retrain`:

1. rebuild the sampled training rows from the archive (:mod:`models.snapshots.archive_rows`), as of a day;
2. hold out the most recent ``holdout_days`` of rows; train each model (``intent``, ``price``) on the rest —
   ``scratch``: a new booster on the whole sample; ``warm``: the current snapshot's booster fine-tuned
   (:func:`models.snapshots.fine_tune.fine_tune`) on the rows newer than the data it learned: a few trees earned
   by the rows, a leaf refresh at ``max_trees``, or, on fewer than ``warm_min_rows`` new rows, nothing (the
   snapshot is kept as it is, and those rows wait for a later night). It falls back to scratch when there is no
   usable current snapshot, or when that one learned from fewer than ``warm_min_rows`` rows in all;
3. score the challenger and the current snapshot (the champion) on the held-out slice, and let the gate decide;
4. write the snapshot to the registry (always: a rejected challenger is kept for inspection) with its
   metadata — data window, the sample's per-tier sizes, metrics, the verdict, features, code version, compute —
   and promote it when the gate says so. Workers pick it up without restart.

With ``compare`` the other mode is trained too, on the same rows, and both are reported side by side (compute
and held-out quality); only the requested mode's snapshot is written.

The shipped model is the one trained without the held-out days (so that the gate judged the very model that
goes live); the next night's run trains on them.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, timedelta, tzinfo
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import xgboost

from models.behaviour.features import FEATURE_NAMES, FEATURES_VERSION
from models.behaviour.settings import SessionSettings
from models.calibration import Platt
from models.errors import SnapshotRejected
from models.history.sampling import RecencySampler, Tier, format_tiers, parse_tiers
from models.settings import ModelSettings
from models.snapshots.archive_rows import PRICE_FEATURE_NAMES, TrainingData, build_training_data
from models.snapshots.fine_tune import fine_tune, worth_continuing
from models.snapshots.registry import Registry, Snapshot
from models.snapshots.training import TrainingSet, TrainParams, evaluate, gate, train

log = logging.getLogger(__name__)

Mode = Literal["scratch", "warm"]
# Nightly defaults: shallow trees, a small step and early stopping on a seeded validation split, so that a
# small archive (a few thousand labelled sessions) does not overfit; a large one stops when it stops gaining.
NIGHTLY_PARAMS = TrainParams(
    max_depth=4,
    eta=0.05,
    num_rounds=400,
    min_child_weight=5.0,
    validation_fraction=0.15,
    min_validation_rows=30,
    calibration_folds=3,
)
MODEL_COLUMNS: dict[str, tuple[str, ...]] = {"intent": FEATURE_NAMES, "price": PRICE_FEATURE_NAMES}


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    archive: Path
    registry: Path
    as_of: date
    tiers: tuple[Tier, ...]
    mode: Mode = "scratch"
    seed: int = 0
    weighted: bool = True
    holdout_days: int = 1
    gate_metric: str = "logloss"
    gate_tolerance: float = 0.005
    compare: bool = True
    params: TrainParams = NIGHTLY_PARAMS
    reason: str = "scheduled"
    # share and flat fee by offer name (the catalogue's), for archived decisions that logged no offer_terms
    offer_terms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def nightly_config(
    models: ModelSettings,
    archive: Path,
    registry: Path,
    as_of: date,
    seed: int,
    offer_terms: Mapping[str, Mapping[str, float]],
    **changes: Any,
) -> RetrainConfig:
    """The retrain the ``models`` settings describe (recency tiers, weighting, holdout and gate) as of ``as_of``,
    its recency sample seeded by ``seed``; ``changes`` set the other fields (``mode``, ``compare``, ``params``...)."""
    return RetrainConfig(
        archive=archive,
        registry=registry,
        as_of=as_of,
        tiers=parse_tiers(models.tiers),
        seed=seed,
        weighted=models.weighted,
        holdout_days=models.holdout_days,
        gate_metric=models.gate_metric,
        gate_tolerance=models.gate_tolerance,
        offer_terms=offer_terms,
        **changes,
    )


def retrain_nightly(
    archive: Path,
    registry: Path,
    as_of: date,
    models: ModelSettings,
    sessions: SessionSettings,
    offer_terms: Mapping[str, Mapping[str, float]],
    seed: int,
    threads: int = 1,
) -> dict[str, Any]:
    """The nightly retrain the ``models`` settings describe (sessions as ``sessions`` define them), as of
    ``as_of``, into ``registry`` (scratch, no comparison of modes); its report. The benches and the lab run it
    as the worker's scheduler would.

    One XGBoost thread by default: the rows are few, and OpenMP threads on a busy machine can be slower than one.
    """
    params = replace(NIGHTLY_PARAMS, nthread=threads)
    config = nightly_config(models, archive, registry, as_of, seed, offer_terms, compare=False, params=params)
    return retrain(config, sessions)


@dataclass(slots=True)
class ModeResult:
    """One mode's training of one model, and its quality on the held-out slice."""

    booster: xgboost.Booster | None
    rows: int
    cpu_s: float
    wall_s: float
    holdout: dict[str, Any]
    note: str | None = None
    # the last day and the number of rows the booster has learned from, all trainings it continues included
    trained_through: date | None = None
    rows_learned: int | None = None
    calibration: Platt | None = None  # the booster's Platt scaling (None: scored as it is)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "cpu_s": round(self.cpu_s, 3),
            "wall_s": round(self.wall_s, 3),
            "holdout": self.holdout,
            "note": self.note,
        }


def code_version() -> str:
    try:
        return importlib_metadata.version("offerstream")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def retrain(
    config: RetrainConfig,
    sessions: SessionSettings,
    tz: tzinfo = UTC,
    clock: Callable[[], float] = time.time,
    on_day: Callable[[date, int], None] | None = None,
) -> dict[str, Any]:
    """Run the nightly retrain once; returns the report kept in the snapshot's metadata (and printed)."""
    registry = Registry(config.registry, clock=lambda: int(clock() * 1000))
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    sampler = RecencySampler(config.as_of, config.tiers, seed=config.seed, weighted=config.weighted)
    data = build_training_data(config.archive, sampler, sessions, config.offer_terms, tz, on_day=on_day)
    read_s = time.perf_counter() - started_wall
    champion = _champion(registry)

    models: dict[str, xgboost.Booster] = {}
    per_model: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    for name, rows in (("intent", data.intent), ("price", data.price)):
        result = _train_model(name, rows, config, champion)
        per_model[name] = result
        if result.get("booster") is not None:
            models[name] = result.pop("booster")
            verdicts[name] = result["gate"]
        else:
            result.pop("booster", None)
    promote = bool(models) and all(v["promote"] for v in verdicts.values())
    reason = (
        "no model could be trained (see models.*.note)"
        if not models
        else "every model passed the gate"
        if promote
        else "; ".join(f"{n}: {v['reason']}" for n, v in verdicts.items() if not v["promote"])
    )
    verdict = {"promote": promote, "reason": reason, "models": verdicts}
    report: dict[str, Any] = {
        "as_of": config.as_of.isoformat(),
        "mode": config.mode,
        "reason": config.reason,
        "seed": config.seed,
        "tiers": format_tiers(config.tiers),
        "weighted": config.weighted,
        "sample": sampler.report(),
        "sample_outside_tiers": sampler.report_extra(),
        "data_window": _data_window(config, data),
        "archive": data.report(),
        "holdout_days": config.holdout_days,
        "gate": verdict,
        "champion": champion.version if champion is not None else None,
        "features_version": FEATURES_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "models": {name: {"feature_names": list(MODEL_COLUMNS[name]), **r} for name, r in per_model.items()},
        "params": asdict(config.params),
        "code_version": code_version(),
        "compute": {
            "read_and_sample_wall_s": round(read_s, 3),
            "total_wall_s": round(time.perf_counter() - started_wall, 3),
            "total_cpu_s": round(time.process_time() - started_cpu, 3),
            "peak_rss_mb": peak_rss_mb(),
        },
    }
    if not models:
        log.warning("retrain as of %s: nothing to train (%s)", config.as_of, reason)
        report["version"] = None
        return report
    version = registry.write_snapshot(models, report)
    report["version"] = version
    if promote:
        registry.promote(version, verdict)
        log.info("snapshot %s promoted (%s)", version, reason)
    else:
        registry.record_rejection(version, verdict)
        log.warning("snapshot %s kept out of service: %s", version, reason)
    return report


def _champion(registry: Registry) -> Snapshot | None:
    try:
        return registry.load_current(expected_features_version=FEATURES_VERSION)
    except SnapshotRejected as exc:
        log.error("current snapshot %s is unusable (%s): the challenger is judged alone", exc.version, exc.reason)
        return None


def _last_day(snapshot: Snapshot | None, name: str) -> date | None:
    """The last day the snapshot's model ``name`` learned (its held-out days it did not: a fine-tune learns them;
    a fine-tune that waited learned none of its window)."""
    if snapshot is None:
        return None
    window = snapshot.metadata.get("data_window", {})
    model = snapshot.metadata.get("models", {}).get(name, {})
    last = model.get("trained_through") or window.get("trained_through") or window.get("last_day")
    return date.fromisoformat(last) if last else None


def _rows_learned(snapshot: Snapshot | None, name: str) -> int | None:
    """How many rows the snapshot's model ``name`` learned from in all (None: a snapshot that did not say)."""
    if snapshot is None:
        return None
    rows = snapshot.metadata.get("models", {}).get(name, {}).get("rows_learned")
    return None if rows is None else int(rows)


def _data_window(config: RetrainConfig, data: TrainingData) -> dict[str, Any]:
    oldest = config.as_of - timedelta(days=config.tiers[-1].max_age_days - 1)
    holdout_from = _holdout_start(data, config.holdout_days)
    return {
        "first_day": max(oldest, data.first_day).isoformat() if data.first_day else None,
        "last_day": min(config.as_of, data.last_day).isoformat() if data.last_day else None,
        "holdout_from": holdout_from,
        "trained_through": (date.fromisoformat(holdout_from) - timedelta(days=1)).isoformat() if holdout_from else None,
    }


def _holdout_start(data: TrainingData, holdout_days: int) -> str | None:
    days = data.intent.days
    if days is None:
        return None
    return (days[1] - timedelta(days=holdout_days - 1)).isoformat()


class Learned(NamedTuple):
    """What the current snapshot's model learned: through which day, from how many rows (None: not known)."""

    through: date | None
    rows: int | None


def _train_model(
    name: str,
    rows: TrainingSet,
    config: RetrainConfig,
    champion: Snapshot | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"booster": None, "rows_sampled": len(rows), "positives": rows.positives}
    if len(rows) == 0:
        out["note"] = "no rows in the sample" + (" (no archived decisions)" if name == "price" else "")
        return out
    (X, y, w, days), (hX, hy, hw, _) = rows.split_recent(config.holdout_days)
    out["rows_train"], out["rows_holdout"] = len(y), len(hy)
    if len(y) == 0 or len(np.unique(y)) < 2:
        out["note"] = "the training rows hold a single class: nothing to learn"
        return out
    base = champion.models.get(name) if champion is not None else None
    base_calibration = champion.calibrations.get(name) if champion is not None else None
    learned = Learned(_last_day(champion, name), _rows_learned(champion, name))
    modes: list[Mode] = [config.mode]
    if config.compare:
        modes.append("warm" if config.mode == "scratch" else "scratch")
    results: dict[str, ModeResult] = {}
    for mode in modes:
        fitted = _fit(mode, X, y, w, days, (hX, hy, hw), config, base, learned, rows.feature_names, base_calibration)
        results[mode] = fitted
    chosen = results[config.mode]
    champion_holdout = (
        evaluate(base, hX, hy, hw, base_calibration)
        if base is not None and len(hy)
        else {"note": "no current snapshot of this model"}
    )
    out["modes"] = {mode: r.summary() for mode, r in results.items()}
    out["champion_holdout"] = champion_holdout
    out["gate"] = gate(
        chosen.holdout,
        champion_holdout if base is not None else None,
        metric=config.gate_metric,
        tolerance=config.gate_tolerance,
    )
    out["booster"] = chosen.booster
    out["note"] = chosen.note
    out["trained_through"] = chosen.trained_through.isoformat() if chosen.trained_through else None
    out["rows_learned"] = chosen.rows_learned
    out["calibration"] = chosen.calibration.to_metadata() if chosen.calibration is not None else None
    return out


def _fit(
    mode: Mode,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    days: np.ndarray,
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: RetrainConfig,
    base: xgboost.Booster | None,
    learned: Learned,
    feature_names: tuple[str, ...] | list[str],
    base_calibration: Platt | None = None,
) -> ModeResult:
    last = date.fromordinal(int(days.max())) if len(days) else None
    note = None
    if mode == "warm" and base is not None and worth_continuing(learned.rows, config.params):
        new = days > learned.through.toordinal() if learned.through is not None else np.ones(len(days), dtype=bool)
        result = fine_tune(X[new], y[new], w[new], list(feature_names), config.params, base)
        done = "kept" if result.action == "wait" else "fine-tuned"
        note = f"{done} {_name(base)}, rows newer than {learned.through}: {result.note}"
        if result.action == "wait":  # the snapshot as it is; its new rows wait for a later night
            holdout_eval = _holdout_eval(base, holdout, base_calibration)
            return ModeResult(base, 0, 0.0, 0.0, holdout_eval, note, learned.through, learned.rows, base_calibration)
        rows = (learned.rows or 0) + result.rows
    else:
        if mode == "warm":
            note = (
                "no current snapshot to continue: trained from scratch"
                if base is None
                else f"{_name(base)} learned from only {learned.rows} rows: trained from scratch"
            )
        result = train(X, y, w, list(feature_names), config.params)
        rows = result.rows
    return ModeResult(
        result.booster,
        result.rows,
        result.cpu_s,
        result.wall_s,
        _holdout_eval(result.booster, holdout, result.calibration),
        note,
        last,
        rows,
        result.calibration,  # a fine-tuned booster has none: its trees changed
    )


def _holdout_eval(
    booster: xgboost.Booster,
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray],
    calibration: Platt | None = None,
) -> dict[str, Any]:
    hX, hy, hw = holdout
    if len(hy) == 0:
        return {"auc": None, "n": 0, "note": "empty held-out slice"}
    return evaluate(booster, hX, hy, hw, calibration)


def _name(booster: xgboost.Booster) -> str:
    return f"the current snapshot ({booster.num_boosted_rounds()} trees)"


def comparison_table(report: Mapping[str, Any]) -> str:
    """The scratch-vs-warm comparison as a small text table (one line per model and mode)."""
    lines = [f"{'model':<7} {'mode':<8} {'rows':>9} {'cpu s':>8} {'wall s':>8} {'auc':>7} {'logloss':>8}  note"]
    for name, m in report["models"].items():
        for mode, r in m.get("modes", {}).items():
            h = r["holdout"]
            auc = "-" if h.get("auc") is None else f"{h['auc']:.4f}"
            ll = "-" if h.get("logloss") is None else f"{h['logloss']:.4f}"
            line = f"{name:<7} {mode:<8} {r['rows']:>9} {r['cpu_s']:>8.2f} {r['wall_s']:>8.2f} {auc:>7} {ll:>8}"
            lines.append(f"{line}  {r['note'] or ''}")
        champ = m.get("champion_holdout", {})
        if champ.get("auc") is not None:
            lines.append(
                f"{name:<7} {'current':<8} {'':>9} {'':>8} {'':>8} {champ['auc']:>7.4f} {champ['logloss']:>8.4f}"
            )
    return "\n".join(lines)
