"""When to retrain: every night at a set time, and early when a worker's online learners raise a drift alarm.

Workers and the retrain job share nothing but the registry folder, so a drift alarm travels as a small file:
a worker writes ``REGISTRY/requests/<epoch ms>-<worker>.json`` (:func:`request_retrain`); the scheduler of
``offerstream retrain --schedule nightly`` looks at that folder on each tick and runs an early retrain when a
request is there and the last drift-triggered retrain is at least ``drift_retrain_min_interval_s`` old (requests that
arrive within the interval are answered by that one retrain). Handled requests are deleted.

Time comes from the caller, so the rules are tested without waiting.

>>> from datetime import datetime, UTC
>>> s = RetrainScheduler(retrain_at="02:00", registry="/nonexistent", drift_retrain_min_interval_s=3600)
>>> s.due(datetime(2026, 1, 5, 1, 0, tzinfo=UTC)) is None  # before the first 02:00 after start
True
>>> s.due(datetime(2026, 1, 5, 2, 0, 30, tzinfo=UTC))
'nightly'
>>> s.done("nightly", datetime(2026, 1, 5, 2, 1, tzinfo=UTC))
>>> s.due(datetime(2026, 1, 5, 23, 0, tzinfo=UTC)) is None
True
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def request_retrain(registry: str | Path, source: str, reason: str, now_ms: int) -> Path:
    """Ask the scheduler for an early retrain (written atomically; several workers may ask at once)."""
    folder = Path(registry) / "requests"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{now_ms:013d}-{_SAFE.sub('_', source)[:64]}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(orjson.dumps({"ts_ms": now_ms, "source": source, "reason": reason}))
    os.replace(tmp, folder / name)
    return folder / name


def pending_requests(registry: str | Path) -> list[Path]:
    folder = Path(registry) / "requests"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


class RetrainScheduler:
    """Decides, at each tick, whether a retrain is due: ``"nightly"``, ``"drift"`` or None."""

    def __init__(
        self,
        retrain_at: str,
        registry: str | Path,
        drift_retrain_min_interval_s: float,
        started: datetime | None = None,
    ):
        hours, minutes = (int(p) for p in retrain_at.split(":"))
        self.retrain_at = retrain_at
        self.registry = Path(registry)
        self.drift_retrain_min_interval_s = drift_retrain_min_interval_s
        self._at = dtime(hours, minutes, tzinfo=UTC)
        self._min_drift_interval = timedelta(seconds=drift_retrain_min_interval_s)
        self._last_nightly: date | None = started.date() if started and started.timetz() >= self._at else None
        self._last_drift: datetime | None = None
        self._handled: list[Path] = []

    def due(self, now: datetime) -> str | None:
        if now.timetz() >= self._at and self._last_nightly != now.date():
            return "nightly"
        requests = pending_requests(self.registry)
        if requests and (self._last_drift is None or now - self._last_drift >= self._min_drift_interval):
            self._handled = requests
            return "drift"
        return None

    def done(self, reason: str, now: datetime) -> None:
        """Record that a retrain for ``reason`` ran at ``now``; a nightly run also answers pending requests."""
        if reason == "nightly":
            self._last_nightly = now.date()
        else:
            self._last_drift = now
        for path in self._handled if reason == "drift" else pending_requests(self.registry):
            path.unlink(missing_ok=True)
        self._handled = []

    @staticmethod
    def as_of(reason: str, now: datetime) -> date:
        """The nightly run trains on the finished days (up to yesterday); a drift run on today's too."""
        return now.date() - timedelta(days=1) if reason == "nightly" else now.date()
