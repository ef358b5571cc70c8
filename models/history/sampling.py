"""The recency sample the nightly retrain learns from: recent days in full, older days thinned, the oldest dropped.

**Ages.** A row's age is ``(as_of - day).days`` where ``day`` is its UTC archive day and ``as_of`` is the
*newest day the retrain uses* (normally yesterday, the last complete UTC day, for a run after midnight). So
age 0 is ``as_of`` itself, and a :class:`Tier` covers ``min_age_days <= age < max_age_days``. The default
``0-30:1,30-90:0.5,90-180:0.1`` keeps all of the last 30 days (ages 0-29), half of days 31-90 (ages 30-89; "day
31" is age 30), a tenth of days 91-180, and nothing older; days after ``as_of`` are not sampled either.

**Which rows.** A row is kept when ``u(seed, key) < rate``, ``u`` a uniform number from blake2b of the seed and
the row's key (an ``event_id``, a ``decision_id``, or a ``user_id`` to keep or drop a user's rows together). So
the sample does not depend on the order rows are read, and samples are nested: a row kept at 10% is kept at 50%,
so as a day ages from tier to tier the rows it keeps are a subset of those it kept before.

**Weights.** A kept row weighs ``1 / rate`` (``weighted=False``: 1.0), so weighted counts and sums estimate
those of every row in the tiers (Horvitz-Thompson).

>>> from datetime import date
>>> s = RecencySampler(date(2026, 1, 31), parse_tiers("0-30:1,30-90:0.5"), seed=7)
>>> s.keep("e1", date(2026, 1, 31)), s.keep("e1", date(2026, 2, 1)), s.keep("e1", date(2025, 1, 1))
(1.0, None, None)
>>> s.tier_for(date(2026, 1, 1))
Tier(min_age_days=30, max_age_days=90, rate=0.5)
>>> s.report()[0]["available"], s.report_extra()
(1, {'future': 1, 'gap': 0, 'too_old': 1})
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from models.errors import TierError
from models.history.archive import ID_FIELDS, iter_archive

_TIER_TEXT = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\S+?)\s*$")
_U_SCALE = 2.0**-64


@dataclass(frozen=True)
class Tier:
    """Rows aged ``min_age_days <= age < max_age_days`` are kept with probability ``rate``."""

    min_age_days: int
    max_age_days: int
    rate: float

    def __post_init__(self) -> None:
        if not 0 <= self.min_age_days < self.max_age_days:
            raise TierError(f"tier window needs 0 <= min < max, got {self.min_age_days}-{self.max_age_days}")
        if not (math.isfinite(self.rate) and 0 < self.rate <= 1):
            raise TierError(f"tier rate must be in (0, 1], got {self.rate}")

    def covers(self, age: int) -> bool:
        """Whether a row ``age`` days old falls in this tier."""
        return self.min_age_days <= age < self.max_age_days


DEFAULT_TIERS: tuple[Tier, ...] = (Tier(0, 30, 1.0), Tier(30, 90, 0.5), Tier(90, 180, 0.1))


def check_tiers(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    """The tiers as a tuple, once they are known to be non-empty, sorted and non-overlapping (gaps allowed)."""
    if not tiers:
        raise TierError("at least one tier is needed")
    for before, after in itertools.pairwise(tiers):
        if after.min_age_days < before.max_age_days:
            raise TierError(
                f"tiers must be sorted and must not overlap: {format_tiers([before])} then {format_tiers([after])}"
            )
    return tuple(tiers)


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """Tiers from ``"MIN-MAX:RATE,..."``, ages in days, half-open windows.

    >>> parse_tiers("0-30:1.0, 30-90:0.5")
    (Tier(min_age_days=0, max_age_days=30, rate=1.0), Tier(min_age_days=30, max_age_days=90, rate=0.5))
    >>> parse_tiers("0-30:1,20-90:0.5")
    Traceback (most recent call last):
    ...
    models.errors.TierError: tiers must be sorted and must not overlap: 0-30:1 then 20-90:0.5
    """
    tiers = []
    for part in text.split(","):
        m = _TIER_TEXT.match(part)
        if not m:
            raise TierError(f"tier {part.strip()!r} is not MIN-MAX:RATE (e.g. 30-90:0.5)")
        try:
            rate = float(m.group(3))
        except ValueError:
            raise TierError(f"tier {part.strip()!r}: rate {m.group(3)!r} is not a number") from None
        tiers.append(Tier(int(m.group(1)), int(m.group(2)), rate))
    return check_tiers(tiers)


def format_tiers(tiers: Sequence[Tier]) -> str:
    """The text :func:`parse_tiers` reads back.

    >>> format_tiers(DEFAULT_TIERS)
    '0-30:1,30-90:0.5,90-180:0.1'
    """
    return ",".join(f"{t.min_age_days}-{t.max_age_days}:{t.rate:g}" for t in tiers)


def uniform(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key).

    >>> uniform(0, "e1") == uniform(0, "e1") != uniform(1, "e1")
    True
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") * _U_SCALE


class RecencySampler:
    """Decides, row by row, whether a row of a given day is in the sample and with what weight; counts as it goes."""

    def __init__(
        self, as_of: date, tiers: Sequence[Tier] = DEFAULT_TIERS, seed: int = 0, weighted: bool = True
    ) -> None:
        self.as_of = as_of
        self.tiers = check_tiers(tiers)
        self.seed = seed
        self.weighted = weighted
        self._available = [0] * len(self.tiers)
        self._sampled = [0] * len(self.tiers)
        self._extra = {"future": 0, "gap": 0, "too_old": 0}
        self._tier_index: dict[date, int | str] = {}  # day -> tier index, or the extra counter it lands in

    def window(self) -> tuple[date, date]:
        """The first and last day any tier covers: the only days worth reading."""
        return (
            self.as_of - timedelta(days=self.tiers[-1].max_age_days - 1),
            self.as_of - timedelta(days=self.tiers[0].min_age_days),
        )

    def _index(self, day: date) -> int | str:
        found = self._tier_index.get(day)
        if found is None:
            age = (self.as_of - day).days
            found = next((i for i, t in enumerate(self.tiers) if t.covers(age)), None)
            if found is None:
                found = "future" if age < 0 else "too_old" if age >= self.tiers[-1].max_age_days else "gap"
            self._tier_index[day] = found
        return found

    def tier_for(self, day: date) -> Tier | None:
        """The tier a row of ``day`` falls in; None when the day is too old, after ``as_of`` or between tiers."""
        i = self._index(day)
        return self.tiers[i] if isinstance(i, int) else None

    def keep(self, key: str, day: date) -> float | None:
        """None when the row is not sampled, else its weight (``1/rate``, or 1.0 unweighted)."""
        i = self._index(day)
        if isinstance(i, str):
            self._extra[i] += 1
            return None
        self._available[i] += 1
        rate = self.tiers[i].rate
        if rate < 1.0 and uniform(self.seed, key) >= rate:
            return None
        self._sampled[i] += 1
        return 1.0 / rate if self.weighted else 1.0

    def report(self) -> list[dict[str, Any]]:
        """Per tier: its window and rate, the rows offered (``available``) and kept (``sampled``) so far."""
        return [
            {
                "min_age_days": t.min_age_days,
                "max_age_days": t.max_age_days,
                "rate": t.rate,
                "available": self._available[i],
                "sampled": self._sampled[i],
            }
            for i, t in enumerate(self.tiers)
        ]

    def report_extra(self) -> dict[str, int]:
        """Rows in no tier, none of them sampled: after ``as_of`` (``future``), between tiers, or too old."""
        return dict(self._extra)


def sample_archive(
    root: str | Path, kind: str, sampler: RecencySampler, key_field: str | None = None
) -> Iterator[tuple[dict[str, Any], float]]:
    """``(record, weight)`` for each sampled archived record, oldest day first, reading only the tiers' days.

    The key is ``key_field`` (default: the kind's id, ``event_id`` or ``decision_id``). Days outside the tiers
    are not read, so they are not counted in :meth:`RecencySampler.report_extra`.
    """
    field = key_field or ID_FIELDS[kind]
    start, end = sampler.window()
    for day, records in iter_archive(root, kind, start, end):
        for rec in records:
            weight = sampler.keep(str(rec.get(field, "")), day)
            if weight is not None:
                yield rec, weight
