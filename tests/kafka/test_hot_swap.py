"""A worker on the real broker hot-swaps to each newly promoted snapshot, and refuses a corrupt one.

Three phases of simulated traffic, each produced only after the previous one is committed:

1. v00001 is current when the worker starts: its decisions name v00001 and carry v00001's scores.
2. v00002 is promoted while the worker runs: the next decisions name v00002 (no restart).
3. CURRENT is pointed at v00003 whose intent model is damaged (as an operator's hand edit or a half-synced
   copy would): the worker logs the refusal once, keeps v00002 and keeps running.

Every decision's ``intent_snapshot`` score is recomputed from its logged features with the snapshot it names,
so the version label and the model that actually scored agree.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import numpy as np
import orjson
import xgboost as xgb
from kafka_helpers import group_done, wait_for

from models.behaviour.features import FEATURE_NAMES, FEATURES_VERSION, as_row
from models.snapshots.registry import Registry
from models.snapshots.retrain import MODEL_COLUMNS
from stream.app.worker import run_worker
from stream.kafka.topic_files import iter_topic, produce_values
from stream.simulator import simulate_to_file
from stream.simulator.simulation import DEFAULT_START

POLL_S = 0.05


def _boosters(seed: int) -> dict[str, xgb.Booster]:
    """Tiny models with the production columns; each seed learns a different function, so scores differ."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, columns in MODEL_COLUMNS.items():
        X = rng.normal(size=(300, len(columns))).astype(np.float32)
        w = rng.normal(size=len(columns))
        y = (X @ w + rng.normal(size=len(X))) > 0
        params = {"objective": "binary:logistic", "nthread": 1, "max_depth": 3, "seed": seed}
        out[name] = xgb.train(params, xgb.DMatrix(X, label=y, feature_names=list(columns)), num_boost_round=4)
    return out


def _metadata() -> dict:
    return {
        "feature_names": list(FEATURE_NAMES),
        "features_version": FEATURES_VERSION,
        "models": {name: {"feature_names": list(columns)} for name, columns in MODEL_COLUMNS.items()},
    }


def _events(tmp_path, phase: int) -> list[bytes]:
    """A day of simulated traffic starting a day after the previous phase ends, with ids unique to the phase."""
    path = tmp_path / f"events-{phase}.jsonl"
    simulate_to_file(
        "stationary", days=1, users=500, seed=20 + phase, out=path, start=DEFAULT_START + timedelta(days=2 * phase)
    )
    values = []
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        for field in ("event_id", "user_id", "session_id"):
            if isinstance(event.get(field), str):
                event[field] = f"p{phase}-{event[field]}"
        values.append(orjson.dumps(event))
    return values


def test_worker_swaps_to_promoted_snapshots_and_refuses_a_corrupt_one(tmp_path, kafka_settings, caplog):
    caplog.set_level(logging.INFO, logger="models.snapshots.watcher")
    registry = Registry(tmp_path / "registry")
    v1 = registry.write_snapshot(_boosters(1), _metadata())
    registry.promote(v1, {"test": "phase 1"})
    assert v1 == "v00001"

    settings = kafka_settings.model_copy(
        update={
            "models": kafka_settings.models.model_copy(update={"registry": registry.root, "registry_poll_s": POLL_S}),
            "kafka": kafka_settings.kafka.model_copy(update={"max_poll_records": 25}),
            "state_dir": tmp_path / "state",
        }
    )
    topic = settings.kafka.clickstream_topic
    phase_of: dict[str, int] = {}
    produced = 0

    def produce_phase(phase: int) -> None:
        nonlocal produced
        values = _events(tmp_path, phase)
        phase_of.update((orjson.loads(v)["event_id"], phase) for v in values)
        produced += produce_values(settings.kafka, topic, values)
        wait_for(lambda: group_done(settings, produced), timeout=90, what=f"phase {phase}: {produced} events consumed")

    def after_poll_interval() -> None:
        # The watcher looks at CURRENT at most once per poll interval (checked at a batch's start); the worker
        # is idle now, so once this much time has passed the next batch is sure to see the new CURRENT.
        time.sleep(3 * POLL_S)

    stop = threading.Event()
    result: dict = {}

    def work() -> None:
        try:
            result["r"] = run_worker(settings, stop)
        except BaseException as exc:  # surfaced by the assertions below
            result["error"] = exc
            raise

    thread = threading.Thread(target=work, daemon=True, name="hot-swap-worker")
    thread.start()
    try:
        produce_phase(1)
        assert thread.is_alive(), result.get("error")

        v2 = registry.write_snapshot(_boosters(2), _metadata())
        registry.promote(v2, {"test": "phase 2"})
        assert v2 == "v00002"
        after_poll_interval()
        produce_phase(2)
        assert thread.is_alive(), result.get("error")

        v3 = registry.write_snapshot(_boosters(3), _metadata())
        assert v3 == "v00003"
        model = registry.snapshots_dir / v3 / "intent.ubj"
        damaged = bytearray(model.read_bytes())
        for i in range(len(damaged) // 3, len(damaged) // 3 + 8):
            damaged[i] ^= 0xFF
        model.write_bytes(bytes(damaged))
        (registry.root / "CURRENT").write_text(f"{v3}\n")  # bypassing promote(), which refuses it
        after_poll_interval()
        produce_phase(3)
        assert thread.is_alive(), result.get("error")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "worker did not stop"
    assert "error" not in result, result.get("error")
    worker = result["r"]
    assert worker.stats.records == produced
    assert worker.processor.model_snapshot is not None and worker.processor.model_snapshot.version == "v00002"

    decisions = [orjson.loads(m.value) for m in iter_topic(settings.kafka, settings.kafka.decisions_topic, 2)]
    by_phase: dict[int, list[dict]] = {1: [], 2: [], 3: []}
    for d in decisions:
        by_phase[phase_of[d["event_id"]]].append(d)
    expected_version = {1: "v00001", 2: "v00002", 3: "v00002"}
    for phase, ds in by_phase.items():
        assert len(ds) >= 10, f"phase {phase} made only {len(ds)} decisions"
        versions = {d["model_versions"]["snapshot"] for d in ds}
        assert versions == {expected_version[phase]}, f"phase {phase}: decisions name {versions}"
        assert all(isinstance(d["scores"].get("intent_snapshot"), float) for d in ds)
        assert all(isinstance(d["scores"].get("lift_snapshot"), float) for d in ds)

    # The named snapshot is the one that scored: recompute each decision's score from its logged features.
    loaded = {v: registry.load(v, FEATURES_VERSION) for v in ("v00001", "v00002")}
    columns = loaded["v00001"].columns("intent")

    def rescored(version: str, d: dict) -> float:
        return round(loaded[version].score_one("intent", as_row(d["features"], columns)), 6)

    for d in decisions:
        assert d["scores"]["intent_snapshot"] == rescored(d["model_versions"]["snapshot"], d), d["decision_id"]
    later = by_phase[2] + by_phase[3]
    assert any(d["scores"]["intent_snapshot"] != rescored("v00001", d) for d in later), "v1 and v2 score alike"

    records = [r for r in caplog.records if r.name == "models.snapshots.watcher"]
    refused = [r for r in records if r.levelno == logging.ERROR and "v00003" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in records]
    assert "refused" in refused[0].getMessage() and "keeping v00002" in refused[0].getMessage()
    loaded_lines = [r.getMessage() for r in records if r.levelno == logging.INFO and "loaded" in r.getMessage()]
    assert any("v00001" in m for m in loaded_lines) and any("v00002" in m for m in loaded_lines)
    assert not any("v00003" in m for m in loaded_lines)
    assert registry.current_version() == "v00003"  # the worker only refuses; it never edits the registry
