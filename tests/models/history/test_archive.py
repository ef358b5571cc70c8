"""The day-partitioned archive: layout, durability per flush, torn tails, de-duplication, reading back by day."""

from __future__ import annotations

import gzip
import logging
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from models.errors import ArchiveError
from models.history import archive
from models.history.archive import ArchiveWriter, archive_days, iter_archive, read_day

DAY5 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
DAY_MS = 86_400_000


def ev(event_id: str, ts: int, **extra: object) -> dict:
    return {"event_id": event_id, "ts": ts, "user_id": "u1", "type": "page_view", **extra}


def write(root: Path, writer_id: str, *records: dict, kind: str = "events") -> None:
    with ArchiveWriter(root, writer_id) as w:
        for r in records:
            w.append(kind, r, r.get("ts_ms", r["ts"]))


def ids(records: list[dict], field: str = "event_id") -> list[str]:
    return [r[field] for r in records]


def test_layout_partitions_by_utc_day_and_sanitises_the_writer_id(tmp_path):
    write(tmp_path, "worker 0/1234", ev("a", DAY5 - 1), ev("b", DAY5), ev("c", DAY5 + DAY_MS - 1))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gz"))
    assert files == [
        "events/date=2026-01-04/part-worker_0_1234.jsonl.gz",
        "events/date=2026-01-05/part-worker_0_1234.jsonl.gz",
    ]
    assert archive_days(tmp_path, "events") == [date(2026, 1, 4), date(2026, 1, 5)]
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["b", "c"]


def test_lines_are_sorted_key_json_and_the_file_is_plain_gzip(tmp_path):
    with ArchiveWriter(tmp_path, "w") as w:
        w.append("events", ev("a", DAY5, zeta=1), DAY5)
        w.flush()
        w.append("events", ev("b", DAY5 + 1), DAY5 + 1)
    part = next(tmp_path.rglob("*.gz"))
    lines = gzip.decompress(part.read_bytes()).splitlines()  # two members, read as one file
    assert lines[0] == b'{"event_id":"a","ts":1767571200000,"type":"page_view","user_id":"u1","zeta":1}'
    assert len(lines) == 2


def test_flush_makes_records_readable_before_close(tmp_path):
    w = ArchiveWriter(tmp_path, "w")
    w.append("events", ev("a", DAY5), DAY5)
    assert archive_days(tmp_path, "events") == []
    w.flush()
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["a"]
    w.close()
    with pytest.raises(ArchiveError):
        w.append("events", ev("b", DAY5), DAY5)


def test_later_changes_to_an_appended_record_do_not_leak_in(tmp_path):
    record = ev("a", DAY5)
    with ArchiveWriter(tmp_path, "w") as w:
        w.append("events", record, DAY5)
        record["user_id"] = "changed"
    assert read_day(tmp_path, "events", date(2026, 1, 5))[0]["user_id"] == "u1"


def test_writers_of_the_same_day_are_merged_sorted_by_time_then_id(tmp_path):
    write(tmp_path, "worker-1", ev("z", DAY5 + 10), ev("b", DAY5 + 5))
    write(tmp_path, "worker-0", ev("a", DAY5 + 5), ev("m", DAY5 + 1))
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["m", "a", "b", "z"]
    assert len(list((tmp_path / "events" / "date=2026-01-05").iterdir())) == 2


def test_repeats_of_an_id_are_read_once_unless_asked(tmp_path):
    write(tmp_path, "worker-0", ev("a", DAY5), ev("b", DAY5 + 1))
    write(tmp_path, "worker-0", ev("a", DAY5))  # the same batch again: flushed, then the worker died uncommitted
    write(tmp_path, "worker-1", ev("b", DAY5 + 1))
    day = date(2026, 1, 5)
    assert ids(read_day(tmp_path, "events", day)) == ["a", "b"]
    assert ids(read_day(tmp_path, "events", day, dedupe=False)) == ["a", "a", "b", "b"]


def test_decisions_sort_by_ts_ms_and_dedupe_by_decision_id(tmp_path):
    d1 = {"decision_id": "d-2", "ts": "2026-01-05T10:00:00.000Z", "ts_ms": DAY5 + 36_000_000}
    d2 = {"decision_id": "d-1", "ts": "2026-01-05T11:00:00.000Z", "ts_ms": DAY5 + 39_600_000}
    write(tmp_path, "w", d2, d1, d2, kind="decisions")
    assert ids(read_day(tmp_path, "decisions", date(2026, 1, 5)), "decision_id") == ["d-2", "d-1"]
    assert archive_days(tmp_path, "events") == []


def test_a_truncated_final_member_keeps_what_is_complete_and_warns(tmp_path, caplog):
    with ArchiveWriter(tmp_path, "w") as w:
        w.append("events", ev("a", DAY5), DAY5)
        w.flush()
        w.append("events", ev("b", DAY5 + 1), DAY5 + 1)
    part = next(tmp_path.rglob("*.gz"))
    data = part.read_bytes()
    part.write_bytes(data[:-7])  # a crash in the middle of the second flush
    with caplog.at_level(logging.WARNING, logger="models.history.archive"):
        assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["a"]
    assert str(part) in caplog.text


@pytest.mark.parametrize("tail", [b"\x1f\x8b", b"garbage", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x00"])
def test_any_torn_tail_is_tolerated(tmp_path, tail, caplog):
    write(tmp_path, "w", ev("a", DAY5))
    part = next(tmp_path.rglob("*.gz"))
    with open(part, "ab") as fh:
        fh.write(tail)
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["a"]
    assert "torn" in caplog.text


def test_a_writer_reopening_a_torn_file_cuts_the_tail_before_appending(tmp_path, caplog):
    write(tmp_path, "w", ev("a", DAY5))
    part = next(tmp_path.rglob("*.gz"))
    good = part.stat().st_size
    with open(part, "ab") as fh:
        fh.write(b"\x1f\x8b\x08\x00half a member")
    write(tmp_path, "w", ev("b", DAY5 + 1))  # the restarted worker, same writer id
    assert "cutting 17 bytes" in caplog.text
    caplog.clear()
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["a", "b"]
    assert caplog.text == ""
    assert gzip.decompress(part.read_bytes()).count(b"\n") == 2 and part.stat().st_size > good


def test_an_empty_part_file_is_an_empty_day(tmp_path):
    folder = tmp_path / "events" / "date=2026-01-05"
    folder.mkdir(parents=True)
    (folder / "part-w.jsonl.gz").write_bytes(b"")
    assert read_day(tmp_path, "events", date(2026, 1, 5)) == []


def test_a_failed_flush_keeps_the_buffer_for_a_retry(tmp_path, monkeypatch):
    w = ArchiveWriter(tmp_path, "w")
    w.append("events", ev("a", DAY5), DAY5)
    w.append("events", ev("b", DAY5 + DAY_MS), DAY5 + DAY_MS)
    real_fsync, calls = os.fsync, []

    def flaky_fsync(fd: int) -> None:
        calls.append(stat.S_ISREG(os.fstat(fd).st_mode))
        if calls.count(True) == 2:  # the second part file's fsync
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(archive.os, "fsync", flaky_fsync)
    with pytest.raises(OSError):
        w.flush()
    w.flush()  # the retry writes what is still buffered; a member written twice is read once
    w.close()
    assert ids(read_day(tmp_path, "events", date(2026, 1, 5))) == ["a"]
    assert ids(read_day(tmp_path, "events", date(2026, 1, 6))) == ["b"]


def test_the_buffer_flushes_itself_past_its_bound(tmp_path):
    w = ArchiveWriter(tmp_path, "w", max_buffer_bytes=200)
    for i in range(5):
        w.append("events", ev(f"e{i}", DAY5 + i), DAY5 + i)
    assert len(read_day(tmp_path, "events", date(2026, 1, 5))) >= 2


def test_same_records_give_the_same_bytes(tmp_path):
    for name in ("x", "y"):
        write(tmp_path / name, "w", ev("a", DAY5), ev("b", DAY5 + 1))
    a, b = (next((tmp_path / n).rglob("*.gz")).read_bytes() for n in ("x", "y"))
    assert a == b


def test_iter_archive_is_oldest_first_inclusive_and_lazy(tmp_path, monkeypatch):
    write(tmp_path, "w", *(ev(f"e{d}", DAY5 + d * DAY_MS) for d in range(5)))
    got = [(d.day, ids(rs)) for d, rs in iter_archive(tmp_path, "events", date(2026, 1, 6), date(2026, 1, 8))]
    assert got == [(6, ["e1"]), (7, ["e2"]), (8, ["e3"])]
    reads = []
    monkeypatch.setattr(archive, "read_day", lambda *a, **k: reads.append(a) or [])
    it = iter_archive(tmp_path, "events")
    next(it)
    assert len(reads) == 1  # one day in memory at a time


def test_unknown_kind_and_empty_writer_id_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown archive kind"):
        archive_days(tmp_path, "clicks")
    with pytest.raises(ValueError, match="unknown archive kind"):
        ArchiveWriter(tmp_path, "w").append("clicks", {}, DAY5)
    with pytest.raises(ValueError):
        ArchiveWriter(tmp_path, "")
    assert archive_days(tmp_path / "nowhere", "events") == []
