"""The snapshot registry: atomic versioned writes, verified loads, bit-stable scoring and the hot-swap watcher."""

from __future__ import annotations

import ast
import gc
import hashlib
import json
import logging
import pickle
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

import models.snapshots.registry as registry_module
from models.errors import RegistryError, SnapshotRejected
from models.snapshots.registry import FORMAT, Registry, Snapshot
from models.snapshots.ubjson import check_ubjson
from models.snapshots.watcher import RegistryWatcher
from stream.core.errors import OfferstreamError

NAMES = ["views", "carts", "price_ratio", "minutes"]
FEATURES_VERSION = "test-v1"
T0_MS = 1_767_657_600_000


def make_booster(
    n_features: int = len(NAMES),
    seed: int = 0,
    rounds: int = 4,
    feature_names: list[str] | None = None,
    max_depth: int = 3,
) -> xgb.Booster:
    """A tiny binary classifier trained on random rows with some NaN (missing) values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * rng.normal(size=400) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": max_depth, "eta": 0.3, "nthread": 1, "verbosity": 0}
    return xgb.train(params, xgb.DMatrix(X, label=y, feature_names=feature_names), rounds)


def make_metadata(**extra: Any) -> dict[str, Any]:
    return {"feature_names": list(NAMES), "features_version": FEATURES_VERSION, **extra}


def random_rows(n: int, seed: int = 1, n_features: int = len(NAMES)) -> np.ndarray:
    """float64 rows with ~20 % NaN and a few all-missing rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=2.0, size=(n, n_features))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[::17] = np.nan
    return X


class Clock:
    def __init__(self, start_ms: int = T0_MS) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        self.now_ms += 1000
        return self.now_ms


@pytest.fixture
def make_registry(tmp_path: Path) -> Callable[..., Registry]:
    def factory(name: str = "registry") -> Registry:
        return Registry(tmp_path / name, clock=Clock())

    return factory


@pytest.fixture
def registry(make_registry: Callable[..., Registry]) -> Registry:
    return make_registry()


def write(registry: Registry, seed: int = 0, **models: xgb.Booster) -> str:
    return registry.write_snapshot(models or {"intent": make_booster(seed=seed)}, make_metadata(seed=seed))


def snapshot_files(registry: Registry, version: str) -> Path:
    return registry.snapshots_dir / version


def rewrite_model(registry: Registry, version: str, name: str, data: bytes, fix_metadata: bool) -> None:
    """Replace a model file; with ``fix_metadata`` its sha256 and size are recomputed (a "valid" bad file)."""
    directory = snapshot_files(registry, version)
    (directory / f"{name}.ubj").write_bytes(data)
    if fix_metadata:
        meta = json.loads((directory / "metadata.json").read_text())
        meta["files"][name].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        (directory / "metadata.json").write_text(json.dumps(meta))


def edit_metadata(registry: Registry, version: str, /, **changes: Any) -> None:
    path = snapshot_files(registry, version) / "metadata.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


# -- writing, promoting, loading ------------------------------------------------------------------------------
def test_round_trip(registry: Registry) -> None:
    booster = make_booster()
    metadata = make_metadata(data_window={"first_day": "2026-01-01"})
    before = json.dumps(metadata)
    version = registry.write_snapshot({"intent": booster}, metadata)
    assert json.dumps(metadata) == before, "the caller's metadata must not be mutated"
    assert version == "v00001"
    assert registry.current_version() is None and registry.load_current() is None

    registry.promote(version, {"promote": True, "reason": "first"})
    assert (registry.root / "CURRENT").read_text() == "v00001\n"
    snapshot = registry.load_current(expected_features_version=FEATURES_VERSION)
    assert snapshot is not None
    assert snapshot.version == "v00001" and snapshot.has("intent") and not snapshot.has("price")
    assert snapshot.feature_names == tuple(NAMES) and snapshot.columns("intent") == tuple(NAMES)
    assert snapshot.metadata["data_window"] == {"first_day": "2026-01-01"}

    data = (snapshot_files(registry, version) / "intent.ubj").read_bytes()
    meta = registry.metadata(version)
    assert meta["version"] == version and meta["format"] == FORMAT and meta["created_ms"] == T0_MS + 1000
    assert meta["files"] == {
        "intent": {"path": "intent.ubj", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    }
    rows = random_rows(300).astype(np.float32)
    assert np.array_equal(snapshot.score("intent", rows), booster.inplace_predict(rows)), "save/load changed scores"


def test_per_model_columns(registry: Registry) -> None:
    price_names = [*NAMES, "offer_share"]
    models = {"intent": make_booster(), "price": make_booster(n_features=5, feature_names=price_names)}
    metadata = make_metadata(models={"price": {"feature_names": price_names}, "intent": {"rows": 400}})
    version = registry.write_snapshot(models, metadata)
    snapshot = registry.load(version)
    assert snapshot.columns("price") == tuple(price_names) and snapshot.columns("intent") == tuple(NAMES)
    assert snapshot.score("price", random_rows(3, n_features=5)).shape == (3,)


def test_versions_increase_and_history(registry: Registry) -> None:
    assert registry.versions() == []
    versions = [write(registry, seed=s) for s in range(3)]
    assert versions == ["v00001", "v00002", "v00003"] == registry.versions()
    registry.promote("v00001", {"promote": True})
    registry.record_rejection("v00002", {"promote": False, "reason": "auc fell"})
    registry.promote("v00003", None)
    assert registry.current_version() == "v00003"
    history = registry.history()
    assert [(h["version"], h["event"]) for h in history] == [
        ("v00001", "promoted"),
        ("v00002", "rejected"),
        ("v00003", "promoted"),
    ]
    assert history[1]["verdict"] == {"promote": False, "reason": "auc fell"}
    assert all(isinstance(h["ts"], int) for h in history) and history[0]["ts"] < history[2]["ts"]
    lines = (registry.root / "history.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_versions_sort_numerically_and_continue_after_gaps(registry: Registry) -> None:
    write(registry)
    (registry.snapshots_dir / "v00001").rename(registry.snapshots_dir / "v99999")
    (registry.snapshots_dir / "v00009").mkdir()  # an empty dir that claims a version still takes the number
    assert write(registry) == "v100000"
    assert registry.versions() == ["v00009", "v99999", "v100000"]


def test_rejection_does_not_move_current(registry: Registry) -> None:
    registry.promote(write(registry), None)
    registry.record_rejection(write(registry), {"promote": False})
    assert registry.current_version() == "v00001"
    with pytest.raises(RegistryError, match="no snapshot v00007"):
        registry.record_rejection("v00007", {"promote": False})


def test_promote_refuses_a_broken_snapshot(registry: Registry) -> None:
    registry.promote(write(registry), None)
    bad = write(registry)
    rewrite_model(registry, bad, "intent", b"garbage", fix_metadata=False)
    with pytest.raises(SnapshotRejected):
        registry.promote(bad, None)
    assert registry.current_version() == "v00001"
    assert [h["version"] for h in registry.history()] == ["v00001"]


@pytest.mark.parametrize(
    ("models", "metadata", "match"),
    [
        ({}, make_metadata(), "at least one model"),
        ({"intent": "booster"}, {"feature_names": NAMES}, "features_version"),
        ({"intent": "booster"}, {"features_version": FEATURES_VERSION}, "feature_names"),
        ({"intent": "booster"}, make_metadata(feature_names="views,carts"), "feature_names"),
        ({"../intent": "booster"}, make_metadata(), "model name"),
        ({"intent": "booster"}, make_metadata(feature_names=NAMES[:3]), "expects 4 features, the metadata lists 3"),
        ({"intent": "named"}, make_metadata(feature_names=list(reversed(NAMES))), "feature 0 is 'views'"),
        ({"intent": "booster"}, make_metadata(not_json=object()), "not JSON-serialisable"),
    ],
)
def test_write_validates(registry: Registry, models: dict[str, Any], metadata: dict[str, Any], match: str) -> None:
    boosters = {"booster": make_booster(), "named": make_booster(feature_names=NAMES)}
    with pytest.raises(RegistryError, match=match):
        registry.write_snapshot({name: boosters[b] for name, b in models.items()}, metadata)
    assert registry.versions() == []
    assert not registry.snapshots_dir.exists() or list(registry.snapshots_dir.iterdir()) == []


def test_errors_share_the_root_exception() -> None:
    exc = SnapshotRejected("v00003", "sha256 mismatch for intent.ubj")
    assert isinstance(exc, OfferstreamError) and isinstance(exc, RegistryError)
    assert (exc.version, exc.reason) == ("v00003", "sha256 mismatch for intent.ubj")
    assert str(exc) == "snapshot v00003 refused: sha256 mismatch for intent.ubj"


# -- atomicity ------------------------------------------------------------------------------------------------
def test_no_temporary_directories_are_left(registry: Registry) -> None:
    for seed in range(3):
        write(registry, seed=seed)
    assert sorted(p.name for p in registry.snapshots_dir.iterdir()) == ["v00001", "v00002", "v00003"]
    assert sorted(p.name for p in (registry.snapshots_dir / "v00002").iterdir()) == ["intent.ubj", "metadata.json"]
    registry.promote("v00002", None)
    assert sorted(p.name for p in registry.root.iterdir()) == ["CURRENT", "history.jsonl", "snapshots"]


def test_a_crashed_write_leaves_no_version(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    write(registry)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(registry_module.os, "rename", crash)
    with pytest.raises(OSError, match="disk on fire"):
        write(registry)
    monkeypatch.undo()
    assert registry.versions() == ["v00001"]
    assert [p.name for p in registry.snapshots_dir.iterdir()] == ["v00001"], "the temporary dir was cleaned up"


def test_a_temporary_directory_left_by_a_crash_is_ignored(registry: Registry) -> None:
    write(registry)
    leftover = registry.snapshots_dir / ".tmp-crashed"
    leftover.mkdir()
    (leftover / "intent.ubj").write_bytes(b"half a model")
    (registry.snapshots_dir / "notes.txt").write_text("not a version either")
    assert registry.versions() == ["v00001"]
    assert write(registry) == "v00002"
    with pytest.raises(SnapshotRejected, match="not a snapshot version name"):
        registry.load(".tmp-crashed")


def test_a_version_taken_by_another_writer_is_skipped(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    write(registry)
    listings = iter([[], ["v00001"]])  # the first listing is stale: another writer renamed v00001 meanwhile
    monkeypatch.setattr(Registry, "versions", lambda self: next(listings))
    assert write(registry) == "v00002"
    monkeypatch.undo()
    assert registry.versions() == ["v00001", "v00002"]
    assert registry.metadata("v00002")["version"] == "v00002"


def test_current_is_replaced_atomically(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.promote(write(registry), None)
    version = write(registry)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(registry_module.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        registry.promote(version, None)
    monkeypatch.undo()
    assert registry.current_version() == "v00001"
    assert sorted(p.name for p in registry.root.iterdir()) == ["CURRENT", "history.jsonl", "snapshots"]


# -- refusing bad snapshots -----------------------------------------------------------------------------------
def test_a_flipped_byte_is_a_sha256_mismatch(registry: Registry) -> None:
    version = write(registry)
    path = snapshot_files(registry, version) / "intent.ubj"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotRejected, match=r"sha256 mismatch for intent\.ubj") as info:
        registry.load(version)
    assert info.value.version == version and info.value.reason == "sha256 mismatch for intent.ubj"


def test_a_truncated_file_is_refused_by_size(registry: Registry) -> None:
    version = write(registry)
    path = snapshot_files(registry, version) / "intent.ubj"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SnapshotRejected, match=f"intent.ubj has 100 bytes, metadata.json says {size}"):
        registry.load(version)


def test_garbage_with_a_matching_sha256_is_an_xgboost_load_error(registry: Registry) -> None:
    version = write(registry)
    good = (snapshot_files(registry, version) / "intent.ubj").read_bytes()
    rewrite_model(registry, version, "intent", b"X" + good[1:], fix_metadata=True)
    with pytest.raises(SnapshotRejected, match="does not start with an object"):
        registry.load(version)
    rewrite_model(registry, version, "intent", b"{}", fix_metadata=True)  # whole UBJSON, but no model in it
    with pytest.raises(SnapshotRejected, match=r"xgboost cannot load intent\.ubj: .+"):
        registry.load(version)


def test_every_truncation_with_a_matching_sha256_is_refused_cleanly(registry: Registry) -> None:
    """xgboost's UBJSON parser can segfault on a truncated model, so the bytes are walked before it sees them."""
    version = write(registry, intent=make_booster(rounds=2, max_depth=2))
    good = (snapshot_files(registry, version) / "intent.ubj").read_bytes()
    check_ubjson(good)
    for cut in range(len(good)):
        with pytest.raises(ValueError):
            check_ubjson(good[:cut])
    for cut in (0, 1, 133, len(good) // 2, len(good) - 1):
        rewrite_model(registry, version, "intent", good[:cut], fix_metadata=True)
        with pytest.raises(SnapshotRejected, match="not a whole UBJSON document"):
            registry.load(version)
    rewrite_model(registry, version, "intent", good + b"Z", fix_metadata=True)
    with pytest.raises(SnapshotRejected, match="1 bytes after the end"):
        registry.load(version)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "intent.ubj").unlink(), r"intent\.ubj is missing"),
        (lambda d: (d / "metadata.json").unlink(), "metadata.json is missing"),
        (lambda d: (d / "metadata.json").write_text("{not json"), "metadata.json is not valid JSON"),
        (lambda d: (d / "metadata.json").write_text("[1, 2]"), "not a JSON object"),
    ],
)
def test_missing_or_unreadable_files(registry: Registry, damage: Callable[[Path], None], match: str) -> None:
    version = write(registry)
    damage(snapshot_files(registry, version))
    with pytest.raises(SnapshotRejected, match=match):
        registry.load(version)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": None}, "registry format None, this code reads 1"),
        ({"format": FORMAT + 1}, f"registry format {FORMAT + 1}"),
        ({"version": "v00042"}, "says it is version 'v00042'"),
        ({"files": {}}, "lists no model files"),
        ({"files": {"intent": {"path": "../../x.ubj", "sha256": "0", "bytes": 1}}}, "bad file entry"),
        ({"feature_names": NAMES[:3]}, r"intent\.ubj expects 4 features, the metadata lists 3"),
        ({"feature_names": [*NAMES, "extra"]}, "expects 4 features, the metadata lists 5"),
        ({"features_version": 2}, "no features_version"),
    ],
)
def test_bad_metadata(registry: Registry, changes: dict[str, Any], match: str) -> None:
    version = write(registry)
    edit_metadata(registry, version, **changes)
    with pytest.raises(SnapshotRejected, match=match):
        registry.load(version)


def test_metadata_without_format(registry: Registry) -> None:
    version = write(registry)
    path = snapshot_files(registry, version) / "metadata.json"
    meta = json.loads(path.read_text())
    del meta["format"]
    path.write_text(json.dumps(meta))
    with pytest.raises(SnapshotRejected, match="no registry format"):
        registry.metadata(version)


def test_feature_names_must_match_when_the_booster_has_them(registry: Registry) -> None:
    version = registry.write_snapshot({"intent": make_booster(feature_names=NAMES)}, make_metadata())
    renamed = [*NAMES[:2], "cart_value", NAMES[3]]
    edit_metadata(registry, version, feature_names=renamed)
    with pytest.raises(SnapshotRejected, match="feature 2 is 'price_ratio' in the model, 'cart_value' in the metadata"):
        registry.load(version)


def test_wrong_features_version(registry: Registry) -> None:
    registry.promote(write(registry), None)
    with pytest.raises(SnapshotRejected, match="trained on features 'test-v1', this code computes 'test-v2'"):
        registry.load_current(expected_features_version="test-v2")
    assert registry.load_current(expected_features_version=FEATURES_VERSION) is not None


def test_unknown_version(registry: Registry) -> None:
    with pytest.raises(SnapshotRejected, match="no such snapshot"):
        registry.load("v00001")
    with pytest.raises(SnapshotRejected, match="not a snapshot version name"):
        registry.load("../../etc")


# -- scoring ------------------------------------------------------------------------------------------------
@pytest.fixture
def deep_snapshot(registry: Registry) -> Snapshot:
    """A bigger model than the others, so that scores depend on many trees and splits."""
    booster = make_booster(rounds=60, max_depth=6, seed=5)
    return registry.load(registry.write_snapshot({"intent": booster}, make_metadata()))


def test_batch_scores_are_bit_identical_to_one_at_a_time(deep_snapshot: Snapshot) -> None:
    rows = random_rows(700, seed=2)
    assert np.isnan(rows).any() and np.isnan(rows).all(axis=1).any()
    batch = deep_snapshot.score("intent", rows)
    assert batch.dtype == np.float32 and batch.shape == (700,)
    one_by_one = np.array([deep_snapshot.score_one("intent", row) for row in rows], dtype=np.float32)
    assert np.array_equal(batch.view(np.uint32), one_by_one.view(np.uint32)), "scores depend on the batch"
    chunks = np.concatenate([deep_snapshot.score("intent", rows[i : i + 37]) for i in range(0, len(rows), 37)])
    assert np.array_equal(batch.view(np.uint32), chunks.view(np.uint32))
    assert np.array_equal(batch, deep_snapshot.score("intent", rows.astype(np.float32)))  # float64 in = float32 in
    assert np.array_equal(batch, deep_snapshot.score("intent", np.asfortranarray(rows)))
    assert len(np.unique(batch)) > 50, "the model must actually discriminate for the check to mean anything"


def test_scores_do_not_depend_on_thread_count(deep_snapshot: Snapshot) -> None:
    rows = random_rows(500, seed=3)
    expected = deep_snapshot.score("intent", rows)
    booster = deep_snapshot.models["intent"]
    try:
        for nthread in (2, 8):
            booster.set_param({"nthread": nthread})
            assert np.array_equal(deep_snapshot.score("intent", rows), expected)
    finally:
        booster.set_param({"nthread": registry_module.PREDICT_NTHREAD})


def test_scores_are_probabilities_and_inputs_are_not_mutated(deep_snapshot: Snapshot) -> None:
    rows = random_rows(50)
    copy = rows.copy()
    scores = deep_snapshot.score("intent", rows)
    assert np.array_equal(rows, copy, equal_nan=True)
    assert np.all((scores > 0) & (scores < 1))
    assert isinstance(deep_snapshot.score_one("intent", rows[0]), float)
    assert deep_snapshot.score("intent", np.empty((0, len(NAMES)))).shape == (0,)


def test_score_refuses_wrong_shapes_and_unknown_models(deep_snapshot: Snapshot) -> None:
    with pytest.raises(ValueError, match="rows of 4 features"):
        deep_snapshot.score("intent", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rows of 4 features"):
        deep_snapshot.score("intent", np.zeros(4))
    with pytest.raises(ValueError, match="rows of 4 features"):
        deep_snapshot.score_one("intent", np.zeros(5))
    with pytest.raises(KeyError, match="no model 'price'"):
        deep_snapshot.score("price", np.zeros((1, 4)))


# -- the watcher ----------------------------------------------------------------------------------------------
@pytest.fixture
def caplog_registry(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="models.snapshots.watcher")
    yield caplog


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "models.snapshots.watcher" and r.levelno == level]


def test_watcher_without_a_registry_is_quiet(
    make_registry: Callable[..., Registry], caplog_registry: pytest.LogCaptureFixture
) -> None:
    watcher = RegistryWatcher(make_registry("absent"), FEATURES_VERSION, registry_poll_s=1.0)
    assert watcher.poll(T0_MS) is None and watcher.current is None
    assert messages(caplog_registry, logging.DEBUG) and not messages(caplog_registry, logging.WARNING)
    assert not messages(caplog_registry, logging.ERROR)


def test_watcher_swaps_refuses_and_keeps_the_previous(
    registry: Registry, caplog_registry: pytest.LogCaptureFixture
) -> None:
    swaps: list[str] = []
    watcher = RegistryWatcher(
        registry, FEATURES_VERSION, registry_poll_s=1.0, on_swap=lambda s: swaps.append(s.version)
    )
    t = T0_MS
    assert watcher.poll(t) is None  # nothing promoted yet
    registry.promote(write(registry), None)
    assert watcher.poll(t + 500) is None, "polled again before the interval passed"
    first = watcher.poll(t + 1000)
    assert first is not None and first.version == "v00001" and watcher.current is first
    assert watcher.poll(t + 2000) is None, "the same version is not loaded twice"
    assert "model snapshot v00001 loaded (was none)" in messages(caplog_registry, logging.INFO)

    registry.promote(write(registry, seed=1), None)
    second = watcher.poll(t + 3000)
    assert second is not None and second.version == "v00002" and swaps == ["v00001", "v00002"]
    assert "model snapshot v00002 loaded (was v00001)" in messages(caplog_registry, logging.INFO)

    bad = write(registry, seed=2)
    registry.promote(bad, None)
    path = snapshot_files(registry, bad) / "intent.ubj"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # bit rot after promotion
    path.write_bytes(bytes(data))
    for i in range(5):
        assert watcher.poll(t + 4000 + 1000 * i) is None
    assert watcher.current is second and swaps == ["v00001", "v00002"]
    assert messages(caplog_registry, logging.ERROR) == [
        "snapshot v00003 refused: sha256 mismatch for intent.ubj; keeping v00002"
    ], "one error per bad version, not one per poll"

    registry.promote(write(registry, seed=3), None)
    fourth = watcher.poll(t + 10_000)
    assert fourth is not None and fourth.version == "v00004" and watcher.current is fourth
    (registry.root / "CURRENT").write_text("v00003\n")  # CURRENT moved back to the bad one: tried again
    assert watcher.poll(t + 11_000) is None and watcher.current is fourth
    assert len(messages(caplog_registry, logging.ERROR)) == 2
    assert messages(caplog_registry, logging.ERROR)[1].endswith("; keeping v00004")


def test_watcher_refuses_other_features_and_a_missing_current(
    registry: Registry, caplog_registry: pytest.LogCaptureFixture
) -> None:
    registry.promote(write(registry), None)
    watcher = RegistryWatcher(registry, "test-v2", registry_poll_s=0)
    assert watcher.poll(T0_MS) is None and watcher.current is None
    assert messages(caplog_registry, logging.ERROR) == [
        "snapshot v00001 refused: trained on features 'test-v1', this code computes 'test-v2'; keeping no snapshot"
    ]
    good = RegistryWatcher(registry, FEATURES_VERSION, registry_poll_s=0)
    assert good.poll(T0_MS) is not None
    (registry.root / "CURRENT").unlink()
    assert good.poll(T0_MS + 1) is None and good.current is not None, "a vanished CURRENT keeps the snapshot"


def test_watcher_waits_out_an_unreachable_registry(
    registry: Registry, caplog_registry: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.promote(write(registry), None)
    watcher = RegistryWatcher(registry, FEATURES_VERSION, registry_poll_s=0)
    load = Registry.load

    def unreachable(self: Registry, version: str, expected: str | None = None) -> Snapshot:
        raise OSError(5, "Input/output error (the registry's network volume is gone)")

    monkeypatch.setattr(Registry, "load", unreachable)
    assert watcher.poll(T0_MS) is None and watcher.current is None
    assert "cannot read snapshot v00001" in messages(caplog_registry, logging.WARNING)[0]
    monkeypatch.setattr(Registry, "load", load)
    assert watcher.poll(T0_MS + 1) is not None, "not refused for good: loaded once the registry is back"


def test_watcher_never_reads_the_wall_clock(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.promote(write(registry), None)

    def forbidden() -> float:
        raise AssertionError("the watcher must use the time it is given")

    # the registry module's own view of ``time`` (patching time.time itself would also trip logging's clock)
    monkeypatch.setattr(registry_module, "time", SimpleNamespace(time=forbidden))
    watcher = RegistryWatcher(registry, FEATURES_VERSION, registry_poll_s=60.0)
    assert watcher.poll(0) is not None
    assert watcher.poll(59_999) is None


def test_watcher_rejects_a_negative_interval(registry: Registry) -> None:
    with pytest.raises(ValueError, match="registry_poll_s"):
        RegistryWatcher(registry, FEATURES_VERSION, registry_poll_s=-1)


def test_a_swapped_out_snapshot_is_freed_even_with_the_heap_frozen(registry: Registry) -> None:
    """The worker freezes its heap after each checkpoint (``stream.app.heap.settle``): frozen objects are never
    scanned again, so a snapshot caught in a reference cycle would leak at every nightly swap. It holds none:
    dropping the last reference frees it, boosters included."""
    registry.promote(write(registry), {"promote": True})
    snapshot = registry.load_current()
    assert snapshot is not None
    refs = [weakref.ref(snapshot), *(weakref.ref(booster) for booster in snapshot.models.values())]
    assert len(refs) > 1
    gc.collect()
    gc.freeze()
    try:
        del snapshot
        assert [r for r in refs if r() is not None] == []
    finally:
        gc.unfreeze()


# -- no pickle anywhere ------------------------------------------------------------------------------------------
def test_no_pickle_anywhere(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, forbidden)
    version = write(registry)
    registry.promote(version, {"promote": True})
    snapshot = registry.load_current()
    assert snapshot is not None and snapshot.score("intent", random_rows(5)).shape == (5,)

    model = (snapshot_files(registry, version) / "intent.ubj").read_bytes()
    assert model[:1] == b"{" and not model.startswith(b"\x80"), "UBJSON, not a pickle stream"
    check_ubjson(model)
    tree = ast.parse(Path(registry_module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"pickle", "cloudpickle", "joblib", "dill", "marshal", "shelve"}
    assert registry_module.MODEL_SUFFIX == ".ubj"


def test_any_error_while_xgboost_loads_is_a_rejection(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mangled key can make xgboost's own error message undecodable: a UnicodeDecodeError, not XGBoostError."""
    version = write(registry)

    def undecodable(self: xgb.Booster, fname: object) -> None:
        raise UnicodeDecodeError("utf-8", b"\x93", 0, 1, "invalid start byte")

    monkeypatch.setattr(xgb.Booster, "load_model", undecodable)
    with pytest.raises(SnapshotRejected, match=r"xgboost cannot load intent\.ubj: 'utf-8' codec"):
        registry.load(version)
