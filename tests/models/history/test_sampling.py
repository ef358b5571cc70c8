"""The recency sample: tier boundaries, binomial sizes per tier, determinism, order independence, weights, parsing."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from models.history.archive import ArchiveWriter
from models.history.sampling import (
    DEFAULT_TIERS,
    RecencySampler,
    Tier,
    TierError,
    format_tiers,
    parse_tiers,
    sample_archive,
)
from stream.core.errors import ConfigError

AS_OF = date(2026, 6, 30)
PER_DAY = 400
DAYS = 200


def rows(days: int = DAYS, per_day: int = PER_DAY) -> list[tuple[str, date]]:
    """``per_day`` rows for each of the ``days`` days up to AS_OF (age 0 .. days-1)."""
    return [(f"e-{age}-{i}", AS_OF - timedelta(days=age)) for age in range(days) for i in range(per_day)]


def kept(sampler: RecencySampler, data: list[tuple[str, date]]) -> dict[str, float]:
    out = {}
    for key, day in data:
        weight = sampler.keep(key, day)
        if weight is not None:
            out[key] = weight
    return out


@pytest.mark.parametrize(
    ("age", "rate"),
    [(-1, None), (0, 1.0), (29, 1.0), (30, 0.5), (89, 0.5), (90, 0.1), (179, 0.1), (180, None), (4000, None)],
)
def test_default_tiers_put_day_31_at_half(age, rate):
    tier = RecencySampler(AS_OF).tier_for(AS_OF - timedelta(days=age))
    assert (tier.rate if tier else None) == rate


def test_tier_sizes_are_within_binomial_tolerance_and_nothing_too_old_is_kept():
    sampler = RecencySampler(AS_OF, seed=3)
    sample = kept(sampler, rows())
    report = {(r["min_age_days"], r["max_age_days"]): r for r in sampler.report()}
    for (lo, hi), rate in [((0, 30), 1.0), ((30, 90), 0.5), ((90, 180), 0.1)]:
        available = (hi - lo) * PER_DAY
        assert report[(lo, hi)]["available"] == available
        sd = math.sqrt(available * rate * (1 - rate))
        assert abs(report[(lo, hi)]["sampled"] - available * rate) <= 4 * sd, (lo, hi, report[(lo, hi)])
        assert report[(lo, hi)]["rate"] == rate
    assert sum(r["sampled"] for r in report.values()) == len(sample)
    assert not any(int(key.split("-")[1]) >= 180 for key in sample)
    assert sampler.report_extra() == {"future": 0, "gap": 0, "too_old": 20 * PER_DAY}


def test_every_day_of_a_tier_is_thinned_alike():
    sampler = RecencySampler(AS_OF, seed=1)
    sample = kept(sampler, rows())
    per_day = [sum(1 for k in sample if k.startswith(f"e-{age}-")) for age in range(30, 90)]
    sd = math.sqrt(PER_DAY * 0.25)
    assert all(abs(n - PER_DAY / 2) <= 5 * sd for n in per_day)


def test_same_seed_same_sample_other_seed_other_sample_any_order():
    data = rows(days=120, per_day=50)
    first = kept(RecencySampler(AS_OF, seed=5), data)
    shuffled = data[:]
    random.Random(0).shuffle(shuffled)
    assert kept(RecencySampler(AS_OF, seed=5), shuffled) == first
    assert kept(RecencySampler(AS_OF, seed=6), data).keys() != first.keys()


def test_weights_are_inverse_rates_or_one():
    data = rows(days=181, per_day=20)
    weighted = kept(RecencySampler(AS_OF, seed=2), data)
    plain = kept(RecencySampler(AS_OF, seed=2, weighted=False), data)
    assert weighted.keys() == plain.keys()
    assert set(plain.values()) == {1.0}
    for key, weight in weighted.items():
        age = int(key.split("-")[1])
        assert weight == (1.0 if age < 30 else 2.0 if age < 90 else 10.0)


def test_samples_are_nested_as_rates_fall():
    data = rows(days=1, per_day=2000)
    half = kept(RecencySampler(AS_OF, parse_tiers("0-1:0.5")), data)
    tenth = kept(RecencySampler(AS_OF, parse_tiers("0-1:0.1")), data)
    assert set(tenth) < set(half)


def test_gaps_and_future_days_are_counted_apart():
    sampler = RecencySampler(AS_OF, parse_tiers("1-30:1,60-90:0.5"))
    for age in (-2, 0, 45, 95):
        assert sampler.keep(f"k{age}", AS_OF - timedelta(days=age)) is None
    assert sampler.report_extra() == {"future": 1, "gap": 2, "too_old": 1}
    assert [r["available"] for r in sampler.report()] == [0, 0]
    assert sampler.window() == (AS_OF - timedelta(days=89), AS_OF - timedelta(days=1))


def test_parse_and_format_round_trip():
    assert parse_tiers("0-30:1.0,30-90:0.5,90-180:0.1") == DEFAULT_TIERS
    assert parse_tiers(format_tiers(DEFAULT_TIERS)) == DEFAULT_TIERS
    assert parse_tiers(" 0 - 7 : 1 , 14-28:0.25 ") == (Tier(0, 7, 1.0), Tier(14, 28, 0.25))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not MIN-MAX:RATE"),
        ("0-30", "not MIN-MAX:RATE"),
        ("0-30:half", "not a number"),
        ("0-30:0", "rate must be in"),
        ("0-30:1.5", "rate must be in"),
        ("0-30:nan", "rate must be in"),
        ("30-30:1", "0 <= min < max"),
        ("40-30:1", "0 <= min < max"),
        ("-5-30:1", "not MIN-MAX:RATE"),
        ("0-30:1,29-90:0.5", "must not overlap"),
        ("30-90:0.5,0-30:1", "must be sorted"),
        ("0-30:1,,30-90:0.5", "not MIN-MAX:RATE"),
    ],
)
def test_parse_tiers_refuses_what_cannot_work(text, message):
    with pytest.raises(TierError, match=message) as info:
        parse_tiers(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigError)


def test_sampler_refuses_bad_tiers():
    with pytest.raises(TierError):
        RecencySampler(AS_OF, tiers=())
    with pytest.raises(TierError):
        RecencySampler(AS_OF, tiers=(Tier(0, 30, 1.0), Tier(10, 20, 0.5)))


def test_sample_archive_reads_only_the_tiers_days_and_weights_rows(tmp_path):
    day_ms = 86_400_000
    as_of_ms = (AS_OF - date(1970, 1, 1)).days * day_ms
    with ArchiveWriter(tmp_path, "w") as w:
        for age in range(0, 200, 5):
            for i in range(40):
                ts = as_of_ms - age * day_ms + i
                w.append("events", {"event_id": f"e-{age}-{i}", "ts": ts, "user_id": "u", "type": "search"}, ts)
    sampler = RecencySampler(AS_OF, seed=4)
    got = list(sample_archive(tmp_path, "events", sampler))
    assert got and all(int(r["event_id"].split("-")[1]) < 180 for r, _ in got)
    assert {w for r, w in got if int(r["event_id"].split("-")[1]) < 30} == {1.0}
    assert sum(r["available"] for r in sampler.report()) == 36 * 40  # ages 0..175 step 5
    assert sampler.report_extra()["too_old"] == 0  # days outside the window are not even read
