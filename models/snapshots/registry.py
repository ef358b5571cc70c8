"""The versioned registry of nightly XGBoost snapshots (the watcher that hot-swaps them into workers is in
:mod:`models.snapshots.watcher`).

## Registry layout

```
ROOT/
  CURRENT                   one line: the promoted version (absent until the first promotion)
  history.jsonl             one JSON object per promotion or rejection: version, ts (epoch ms), event, verdict
  snapshots/
    v00001/                 one finished snapshot; never modified once renamed into place
      intent.ubj            one model per name, XGBoost's own UBJSON (``Booster.save_model``); never pickle
      price.ubj
      metadata.json         the trainer's metadata, plus version, format, files and created_ms (below)
    .tmp-k3j2x9/            a snapshot being written, or left by a crash: not a version, ignored by readers
```

- **Versions** are ``v`` and a zero-padded sequence (``v00001``, ``v00002``, …): one more than the highest
  existing, so they sort by age and are never reused.
- **metadata.json** holds the caller's metadata, which must give ``feature_names`` (the model columns, in order)
  and ``features_version``; a model trained on other columns names them in ``models.<name>.feature_names``.
  The registry adds ``version``, ``format`` (:data:`FORMAT`), ``created_ms`` and
  ``files: {name: {"path", "sha256", "bytes"}}`` (replacing any caller fields of those names).
- **Atomic writes**: a snapshot is written into a temporary directory inside ``snapshots/``, every file fsynced,
  then renamed to its version and the directory fsynced, so a reader sees a whole snapshot or none. ``CURRENT``
  is replaced the same way (temporary file, fsync, ``os.replace``). ``CURRENT`` is the truth; the history is
  an audit trail appended after it.
- **Loading verifies everything** before a model serves: the format, every file's size and sha256, that the
  bytes are one whole UBJSON document, that xgboost loads each model, that each model's feature count (and
  names, when it has them) match the metadata, and the features version. Any failure raises
  :class:`SnapshotRejected` with a reason a human can act on.
- **Why the checks come before xgboost**: xgboost's UBJSON parser does not always raise on a damaged model, it
  can crash the process (segfault or abort: an empty or truncated file, and a few percent of single-byte
  flips). The sha256 keeps every damaged file away from it; the bounds-checked UBJSON walk also refuses a
  truncated file whose sha256 was recomputed. A whole but altered file with a recomputed sha256 can still crash
  it: nothing in-process can prevent that, so :meth:`Registry.promote` loads a snapshot before naming it
  current (a crash then stops the nightly job, not the workers).
- **Scoring** (:meth:`Snapshot.score`) predicts in place on float32 rows, one thread per booster: a row's score
  is bit-identical whether it is scored alone or in a batch of any size. A model whose metadata gives
  ``models.<name>.calibration`` (:class:`models.calibration.Platt`) is scored through it, from the
  booster's margin; one without (older snapshots) scores as its booster alone.

>>> import shutil, tempfile, numpy as np, xgboost as xgb
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 2)).astype(np.float32)
>>> booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(X, label=X[:, 0] > 0), 3)
>>> root = tempfile.mkdtemp()
>>> registry = Registry(root, clock=lambda: 1767657600000)
>>> v = registry.write_snapshot({"intent": booster}, {"feature_names": ["a", "b"], "features_version": "demo-v1"})
>>> registry.promote(v, {"promote": True})
>>> snapshot = registry.load_current(expected_features_version="demo-v1")
>>> snapshot.version, snapshot.columns("intent"), snapshot.score("intent", X[:4]).shape
('v00001', ('a', 'b'), (4,))
>>> snapshot.score_one("intent", X[1]) == float(snapshot.score("intent", X[:4])[1])
True
>>> shutil.rmtree(root)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import xgboost

from models.calibration import Platt
from models.errors import RegistryError, SnapshotRejected
from models.snapshots.ubjson import check_ubjson

FORMAT = 1  # the registry's own format version, in every metadata.json
PREDICT_NTHREAD = 1  # per booster: workers are processes; one thread keeps scoring cheap and reproducible
MODEL_SUFFIX = ".ubj"
_VERSION = re.compile(r"^v(\d{5,})$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # model names become file names
_TMP_PREFIX = ".tmp-"
_MAX_RENAME_TRIES = 100
_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Snapshot:
    """One loaded snapshot: its models, the columns each expects, and the metadata it was written with."""

    def __init__(self, version: str, metadata: Mapping[str, Any], models: Mapping[str, xgboost.Booster]) -> None:
        self.version = version
        self.metadata = dict(metadata)
        self.feature_names: tuple[str, ...] = _str_tuple(metadata.get("feature_names"), "feature_names")
        self.models: dict[str, xgboost.Booster] = dict(models)
        self._columns = {name: model_columns(metadata, name) for name in self.models}
        self.calibrations = {name: model_calibration(metadata, name) for name in self.models}

    def has(self, name: str) -> bool:
        return name in self.models

    def columns(self, name: str) -> tuple[str, ...]:
        """The feature columns model ``name`` expects, in order."""
        return self._columns[name]

    def score(self, name: str, X: np.ndarray) -> np.ndarray:
        """Probabilities (float32) of model ``name`` for each row of ``X``; NaN is a missing value.

        Rows are converted (when needed) to a C-contiguous float32 array, as xgboost would, and scored with
        ``inplace_predict``: the same call and dtype for one row or many, so a row's score never depends on the
        batch it came in (a test holds this bit for bit).
        """
        booster = self.models.get(name)
        if booster is None:
            raise KeyError(f"snapshot {self.version} has no model {name!r} (it has {sorted(self.models)})")
        rows = np.ascontiguousarray(X, dtype=np.float32)
        width = len(self._columns[name])
        if rows.ndim != 2 or rows.shape[1] != width:
            raise ValueError(f"model {name!r} scores rows of {width} features, got an array of shape {rows.shape}")
        calibration = self.calibrations.get(name)
        if calibration is None:  # a snapshot written without calibration scores as its booster alone
            return booster.inplace_predict(rows, missing=np.nan, validate_features=False)
        margin = booster.inplace_predict(rows, missing=np.nan, validate_features=False, predict_type="margin")
        return calibration.apply(margin)

    def score_one(self, name: str, x: np.ndarray) -> float:
        """The probability for one feature vector (exactly what :meth:`score` gives that row in any batch)."""
        return float(self.score(name, np.reshape(np.asarray(x, dtype=np.float32), (1, -1)))[0])

    def __repr__(self) -> str:
        return f"Snapshot({self.version!r}, models={sorted(self.models)})"


class Registry:
    """The snapshots under ``root`` (layout in the module docstring). ``clock`` returns epoch milliseconds."""

    def __init__(self, root: str | os.PathLike[str], clock: Callable[[], int] = _wall_ms) -> None:
        self.root = Path(root)
        self.clock = clock

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    def versions(self) -> list[str]:
        """Every finished snapshot, oldest first (temporary directories are not versions)."""
        try:
            entries = os.listdir(self.snapshots_dir)
        except FileNotFoundError:
            return []
        found = [e for e in entries if _VERSION.match(e) and (self.snapshots_dir / e).is_dir()]
        return sorted(found, key=_seq)

    def current_version(self) -> str | None:
        """The promoted version named by ``CURRENT``, or None before the first promotion."""
        try:
            text = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def write_snapshot(self, models: Mapping[str, xgboost.Booster], metadata: Mapping[str, Any]) -> str:
        """Write ``models`` and ``metadata`` as the next version, atomically; returns the version."""
        _check_models(models, metadata)
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.snapshots_dir))
        try:
            files = {name: _write_model(tmp, name, booster) for name, booster in models.items()}
            created_ms = int(self.clock())
            seq = _next_seq(self.versions())
            for _ in range(_MAX_RENAME_TRIES):
                version = f"v{seq:05d}"
                document = {**metadata, "version": version, "format": FORMAT, "files": files, "created_ms": created_ms}
                _write_file(tmp / "metadata.json", _dumps(document, "metadata"))
                _fsync_dir(tmp)
                try:
                    os.rename(tmp, self.snapshots_dir / version)
                except OSError:
                    if not (self.snapshots_dir / version).exists():
                        raise
                    seq = max(seq + 1, _next_seq(self.versions()))  # another writer took it
                    continue
                _fsync_dir(self.snapshots_dir)
                return version
            raise RegistryError(f"no free version after {_MAX_RENAME_TRIES} tries in {self.snapshots_dir}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def promote(self, version: str, verdict: Mapping[str, Any] | None = None) -> None:
        """Make ``version`` current (after checking it loads) and record it in the history."""
        self.load(version)  # never point CURRENT at a snapshot every worker would refuse
        _replace_file(self.root / "CURRENT", f"{version}\n".encode())
        self._append_history(version, "promoted", verdict)

    def record_rejection(self, version: str, verdict: Mapping[str, Any]) -> None:
        """Record that ``version`` was kept out of service; ``CURRENT`` does not change."""
        if version not in self.versions():
            raise RegistryError(f"no snapshot {version} in {self.snapshots_dir}")
        self._append_history(version, "rejected", verdict)

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rejection, oldest first."""
        try:
            lines = (self.root / "history.jsonl").read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return [orjson.loads(line) for line in lines if line.strip()]

    def metadata(self, version: str) -> dict[str, Any]:
        """The metadata.json of ``version``, checked for the registry's own fields."""
        directory = self._dir(version)
        try:
            document = orjson.loads((directory / "metadata.json").read_bytes())
        except FileNotFoundError:
            raise SnapshotRejected(version, "metadata.json is missing") from None
        except orjson.JSONDecodeError as exc:
            raise SnapshotRejected(version, f"metadata.json is not valid JSON ({exc})") from None
        except OSError as exc:
            raise SnapshotRejected(version, f"cannot read metadata.json ({exc})") from None
        _check_metadata(version, document)
        return document

    def load(self, version: str, expected_features_version: str | None = None) -> Snapshot:
        """Load and verify ``version``; raises :class:`SnapshotRejected` saying why it cannot serve."""
        metadata = self.metadata(version)
        if expected_features_version is not None and metadata["features_version"] != expected_features_version:
            trained_on = metadata["features_version"]
            reason = f"trained on features {trained_on!r}, this code computes {expected_features_version!r}"
            raise SnapshotRejected(version, reason)
        directory = self._dir(version)
        models = {
            name: _load_model(version, directory, name, entry, model_columns(metadata, name))
            for name, entry in metadata["files"].items()
        }
        try:
            return Snapshot(version, metadata, models)
        except ValueError as exc:  # a malformed calibration entry
            raise SnapshotRejected(version, f"metadata.json: {exc}") from None

    def load_current(self, expected_features_version: str | None = None) -> Snapshot | None:
        """The promoted snapshot, verified; None before the first promotion."""
        version = self.current_version()
        return None if version is None else self.load(version, expected_features_version)

    def _dir(self, version: str) -> Path:
        if not _VERSION.match(version):
            raise SnapshotRejected(version, "not a snapshot version name (expected v and five or more digits)")
        directory = self.snapshots_dir / version
        if not directory.is_dir():
            raise SnapshotRejected(version, f"no such snapshot in {self.snapshots_dir}")
        return directory

    def _append_history(self, version: str, event: str, verdict: Mapping[str, Any] | None) -> None:
        record = {"version": version, "ts": int(self.clock()), "event": event, "verdict": verdict}
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "history.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write per line: concurrent appenders never interleave within a line
            os.fsync(fd)
        finally:
            os.close(fd)


def model_columns(metadata: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """The columns of model ``name``: ``models.<name>.feature_names`` when given, else ``feature_names``.

    >>> model_columns({"feature_names": ["a"], "models": {"price": {"feature_names": ["a", "offer"]}}}, "price")
    ('a', 'offer')
    >>> model_columns({"feature_names": ["a"]}, "intent")
    ('a',)
    """
    per_model = metadata.get("models")
    entry = per_model.get(name) if isinstance(per_model, Mapping) else None
    if isinstance(entry, Mapping) and "feature_names" in entry:
        return _str_tuple(entry["feature_names"], f"models.{name}.feature_names")
    return _str_tuple(metadata.get("feature_names"), "feature_names")


def _str_tuple(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of strings, got {type(value).__name__}")
    return tuple(value)


def model_calibration(metadata: Mapping[str, Any], name: str) -> Platt | None:
    """The Platt scaling model ``name`` is scored with (``models.<name>.calibration``), or None for none.
    ValueError when the entry is malformed."""
    per_model = metadata.get("models")
    entry = per_model.get(name) if isinstance(per_model, Mapping) else None
    return Platt.from_metadata(entry.get("calibration")) if isinstance(entry, Mapping) else None


def _check_models(models: Mapping[str, xgboost.Booster], metadata: Mapping[str, Any]) -> None:
    if not models:
        raise RegistryError("a snapshot needs at least one model")
    if not isinstance(metadata.get("features_version"), str):
        raise RegistryError("metadata needs features_version, a string")
    try:
        _str_tuple(metadata.get("feature_names"), "feature_names")
    except ValueError as exc:
        raise RegistryError(f"metadata needs feature_names: {exc}") from None
    for name, booster in models.items():
        if not _MODEL_NAME.match(name):
            raise RegistryError(f"model name {name!r} must match {_MODEL_NAME.pattern} (it becomes a file name)")
        try:
            columns = model_columns(metadata, name)
        except ValueError as exc:
            raise RegistryError(f"metadata: {exc}") from None
        problem = _feature_problem(booster, columns)
        if problem is not None:
            raise RegistryError(f"model {name!r}: {problem}")


def _check_metadata(version: str, document: object) -> None:
    if not isinstance(document, dict):
        raise SnapshotRejected(version, "metadata.json is not a JSON object")
    if "format" not in document:
        raise SnapshotRejected(version, "metadata.json has no registry format (not written by this registry?)")
    if document["format"] != FORMAT:
        raise SnapshotRejected(version, f"registry format {document['format']!r}, this code reads {FORMAT}")
    if document.get("version") != version:
        raise SnapshotRejected(version, f"metadata.json says it is version {document.get('version')!r}")
    if not isinstance(document.get("features_version"), str):
        raise SnapshotRejected(version, "metadata.json has no features_version")
    try:
        _str_tuple(document.get("feature_names"), "feature_names")
    except ValueError as exc:
        raise SnapshotRejected(version, f"metadata.json: {exc}") from None
    files = document.get("files")
    if not isinstance(files, dict) or not files:
        raise SnapshotRejected(version, "metadata.json lists no model files")
    for name, entry in files.items():
        path = f"{name}{MODEL_SUFFIX}"
        if not _MODEL_NAME.match(name) or not isinstance(entry, dict) or entry.get("path") != path:
            raise SnapshotRejected(version, f"metadata.json: bad file entry for model {name!r}")
        if not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
            raise SnapshotRejected(version, f"metadata.json: {path} has no sha256 or size")


def _feature_problem(booster: xgboost.Booster, columns: tuple[str, ...]) -> str | None:
    if booster.num_features() != len(columns):
        return f"expects {booster.num_features()} features, the metadata lists {len(columns)}"
    names = booster.feature_names
    if names is not None and tuple(names) != columns:
        first = next(i for i, (a, b) in enumerate(zip(names, columns, strict=True)) if a != b)
        return f"feature {first} is {names[first]!r} in the model, {columns[first]!r} in the metadata"
    return None


def _write_model(directory: Path, name: str, booster: xgboost.Booster) -> dict[str, Any]:
    path = directory / f"{name}{MODEL_SUFFIX}"
    booster.save_model(os.fspath(path))  # the .ubj suffix selects xgboost's UBJSON format
    with open(path, "rb+") as fh:
        data = fh.read()
        os.fsync(fh.fileno())
    if data != booster.save_raw("ubj"):  # a short write that xgboost did not report
        raise RegistryError(f"{path} does not hold what xgboost serialised for model {name!r}")
    return {"path": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _load_model(
    version: str, directory: Path, name: str, entry: Mapping[str, Any], columns: tuple[str, ...]
) -> xgboost.Booster:
    path = entry["path"]
    try:
        data = (directory / path).read_bytes()
    except FileNotFoundError:
        raise SnapshotRejected(version, f"{path} is missing") from None
    except OSError as exc:
        raise SnapshotRejected(version, f"cannot read {path} ({exc})") from None
    if len(data) != entry["bytes"]:
        raise SnapshotRejected(version, f"{path} has {len(data)} bytes, metadata.json says {entry['bytes']}")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise SnapshotRejected(version, f"sha256 mismatch for {path}")
    try:
        check_ubjson(data)
    except ValueError as exc:
        raise SnapshotRejected(version, f"{path} is not a whole UBJSON document ({exc})") from None
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
        booster.set_param({"nthread": PREDICT_NTHREAD})
        problem = _feature_problem(booster, columns)
    except Exception as exc:  # not only XGBoostError: a mangled key makes xgboost's message fail to decode
        raise SnapshotRejected(version, f"xgboost cannot load {path}: {_first_line(exc)}") from None
    if problem is not None:
        raise SnapshotRejected(version, f"{path} {problem}")
    return booster


def _seq(version: str) -> int:
    match = _VERSION.match(version)
    return int(match.group(1)) if match else 0


def _next_seq(versions: list[str]) -> int:
    return 1 + max((_seq(v) for v in versions), default=0)


def _dumps(document: Mapping[str, Any], what: str) -> bytes:
    try:
        return orjson.dumps(document, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise RegistryError(f"{what} is not JSON-serialisable: {exc}") from None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _replace_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\[[\d:]+\] \S+: ", "", text)  # drop xgboost's "[time] source.cc:line: " prefix
