"""Backfill from warehouse exports: CSV with a header, CDNOW-like whitespace text, Parquet, rejects, time zones."""

from __future__ import annotations

import gc
import gzip
import sys
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from models.errors import ImportFailed
from models.history.archive import archive_days, read_day
from models.history.importer import TimeParser, import_table
from stream.core.errors import ConfigError

CDNOW_MAPPING = {"user_id": "customer", "ts": "date", "quantity": "cds", "revenue": "amount"}
CDNOW_OPTIONS = {
    "constants": {"type": "purchase"},
    "ts_format": "%Y%m%d",
    "delimiter": "whitespace",
    "header": False,
    "columns": ["customer", "date", "cds", "amount"],
}
RETAIL_CSV = """InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,6,12/1/2010 8:26,2.55,17850.0,United Kingdom
536366,22633,2,12/1/2010 23:30,1.85,17850.0,United Kingdom
"""
RETAIL_MAPPING = {
    "event_id": "InvoiceNo",
    "product_id": "StockCode",
    "quantity": "Quantity",
    "ts": "InvoiceDate",
    "price": "UnitPrice",
    "user_id": "CustomerID",
}


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def all_events(root: Path) -> list[dict]:
    return [r for d in archive_days(root, "events") for r in read_day(root, "events", d)]


def read_rejects(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_csv_with_header_and_mapping(tmp_path):
    src = tmp_path / "retail.csv"
    src.write_text(RETAIL_CSV)
    stats = import_table(
        src,
        tmp_path / "arc",
        RETAIL_MAPPING,
        constants={"type": "purchase", "device": "desktop"},
        ts_format="%m/%d/%Y %H:%M",
        tz="Europe/London",
    )
    assert stats["rows"] == stats["imported"] == 2 and stats["rejected"] == {}
    assert (stats["first_ts"], stats["last_ts"]) == ("2010-12-01T08:26:00.000Z", "2010-12-01T23:30:00.000Z")
    assert stats["days"] == 1 and stats["first_day"] == stats["last_day"] == "2010-12-01"
    first = all_events(tmp_path / "arc")[0]
    assert first == {
        "event_id": "536365",
        "ts": ms(2010, 12, 1, 8, 26),
        "user_id": "17850",  # a nullable integer column exported as 17850.0 is still the id 17850
        "type": "purchase",
        "product_id": "85123A",
        "quantity": 6,
        "price": 2.55,
        "device": "desktop",
    }
    assert [p.name for p in (tmp_path / "arc").rglob("*.gz")] == ["part-import.jsonl.gz"]


def test_cdnow_whitespace_text_without_header(tmp_path):
    src = tmp_path / "CDNOW_master.txt"
    src.write_text("   00001  19970101  1  11.77\n\n   00002  19970112  1  12.00\n   00002  19970112  5  77.00\n")
    stats = import_table(src, tmp_path / "arc", CDNOW_MAPPING, **CDNOW_OPTIONS)
    assert (stats["rows"], stats["imported"], stats["days"]) == (3, 3, 2)
    events = all_events(tmp_path / "arc")
    assert [(e["event_id"], e["user_id"], e["quantity"], e["revenue"]) for e in events] == [
        ("CDNOW_master-1", "00001", 1, 11.77),
        ("CDNOW_master-2", "00002", 1, 12.0),
        ("CDNOW_master-3", "00002", 5, 77.0),
    ]
    assert events[0]["ts"] == ms(1997, 1, 1) and {e["type"] for e in events} == {"purchase"}


def test_bad_rows_land_in_rejects_with_their_reasons(tmp_path):
    src = tmp_path / "cd.txt"
    src.write_text(
        "00001 19970101 1 11.77\n"
        "00002 19970101 1 -3.00\n"  # negative amount
        "00003 1997-13-45 1 5.00\n"  # unparseable date
        "00004 19970101 x 5.00\n"  # not a number
        "00005 19970101 1.5 5.00\n"  # not a whole number of CDs
        "00006 19970101 1\n"  # a field short
        "00007 19900101 1 5.00\n"  # before 1995
        "00008 19970101 1 nan\n"  # not finite
    )
    rejects = tmp_path / "rejects.jsonl"
    stats = import_table(src, tmp_path / "arc", CDNOW_MAPPING, rejects=rejects, **CDNOW_OPTIONS)
    assert stats["imported"] == 1 and stats["rows"] == 8 and stats["rejected_total"] == 7
    assert stats["rejected"] == {
        "absurd_value": 2,
        "bad_number": 2,
        "bad_timestamp": 1,
        "malformed_row": 1,
        "timestamp_out_of_range": 1,
    }
    by_row = {r["row"]: r for r in read_rejects(rejects)}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8]
    assert by_row[2]["reason"] == "absurd_value" and "revenue" in by_row[2]["detail"]
    assert by_row[2]["raw"] == {"customer": "00002", "date": "19970101", "cds": "1", "amount": "-3.00"}
    assert by_row[2]["line"] == 2
    assert by_row[3]["reason"] == "bad_timestamp" and "1997-13-45" in by_row[3]["detail"]
    assert by_row[6] == {
        "row": 6,
        "line": 6,
        "reason": "malformed_row",
        "detail": "3 fields where the header has 4",
        "raw": ["00006", "19970101", "1"],
    }


def test_contract_violations_are_rejected_by_the_contract(tmp_path):
    src = tmp_path / "e.csv"
    src.write_text("id,when,who,kind\na,2026-01-05T10:00:00Z,u1,page_view\nb,2026-01-05T10:00:00Z,,page_view\n")
    src2 = tmp_path / "e2.csv"
    src2.write_text("id,when,who,kind\nc,2026-01-05T10:00:00Z,u1,teleport\n")
    mapping = {"event_id": "id", "ts": "when", "user_id": "who", "type": "kind"}
    rejects = tmp_path / "r.jsonl.gz"
    stats = import_table(src, tmp_path / "arc", mapping, rejects=rejects)
    assert stats["rejected"] == {"contract_violation": 1}
    (reject,) = (orjson.loads(x) for x in gzip.decompress(rejects.read_bytes()).splitlines())
    assert "user_id" in reject["detail"]
    assert import_table(src2, tmp_path / "arc", mapping)["rejected"] == {"contract_violation": 1}


def test_importing_twice_gives_the_same_ids_and_reads_back_once(tmp_path):
    src = tmp_path / "cd.txt"
    src.write_text("00001 19970101 1 11.77\n00002 19970102 2 20.00\n")
    import_table(src, tmp_path / "arc", CDNOW_MAPPING, **CDNOW_OPTIONS)
    once = all_events(tmp_path / "arc")
    import_table(src, tmp_path / "arc", CDNOW_MAPPING, **CDNOW_OPTIONS)
    assert all_events(tmp_path / "arc") == once
    import_table(src, tmp_path / "other", CDNOW_MAPPING, id_prefix="cdnow", **CDNOW_OPTIONS)
    assert [e["event_id"] for e in all_events(tmp_path / "other")] == ["cdnow-1", "cdnow-2"]


def test_days_are_utc_days_whatever_the_source_zone(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("id,when\nny,2026-01-05 20:00\ntokyo,2026-01-05 08:00\n")
    for tz, expected in (("America/New_York", date(2026, 1, 6)), ("Asia/Tokyo", date(2026, 1, 4))):
        root = tmp_path / tz.replace("/", "_")
        stats = import_table(src, root, {"user_id": "id", "ts": "when"}, constants={"type": "search"}, tz=tz)
        assert stats["imported"] == 2
        assert expected in archive_days(root, "events")
    ny = all_events(tmp_path / "America_New_York")
    assert next(e for e in ny if e["user_id"] == "ny")["ts"] == ms(2026, 1, 6, 1, 0)


def test_time_parsing_without_a_format():
    utc, berlin = TimeParser(None, "UTC"), TimeParser(None, "Europe/Berlin")
    t = ms(2026, 1, 5, 9, 0)
    assert utc("2026-01-05T10:00:00+01:00") == berlin("2026-01-05T10:00:00") == berlin("2026-01-05 10:00") == t
    assert utc(str(t)) == utc(str(t // 1000)) == utc(t // 1000) == utc(float(t) / 1000) == t
    assert utc("1767603600.5") == t + 500 and TimeParser(None, "UTC", "s")("1767603600") == t
    assert TimeParser(None, "UTC", "ms")("1767603600") == 1_767_603_600
    assert (
        utc(datetime(2026, 1, 5, 9, tzinfo=UTC))
        == berlin(datetime(2026, 1, 5, 10, tzinfo=UTC).replace(tzinfo=None))
        == t
    )
    assert berlin(date(2026, 1, 5)) == ms(2026, 1, 4, 23, 0)
    # DST: 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 happens twice (the first is kept)
    assert berlin("2026-10-25T02:30:00") == ms(2026, 10, 25, 0, 30)
    assert berlin("2026-03-29T02:30:00") == ms(2026, 3, 29, 1, 30)
    with pytest.raises(ValueError):
        utc("yesterday")


def test_tsv_gzip_and_a_header_renamed_by_columns(tmp_path):
    src = tmp_path / "export.tsv.gz"
    src.write_bytes(gzip.compress(b"a\tb\tc\nu1\t2026-01-05T10:00:00Z\tadd_to_cart\n"))
    stats = import_table(
        src, tmp_path / "arc", {"user_id": "who", "ts": "when", "type": "what"}, columns=["who", "when", "what"]
    )
    assert stats["format"] == "tsv" and stats["imported"] == 1
    assert all_events(tmp_path / "arc")[0]["event_id"] == "export-1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mapping": {"userid": "customer"}}, "not contract fields"),
        ({"mapping": {"user_id": "nope"}, "header": True, "columns": None}, "no column"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"constants": {"type": "purchase", "user_id": "x"}}, "both mapped and constant"),
        ({"constants": {"type": "purchase", "price": "many"}}, "constant price"),
        ({"columns": None}, "no header row"),
        ({"ts_unit": "minutes"}, "ts_unit"),
        ({"fmt": "xlsx"}, "unknown format"),
        ({"delimiter": "||"}, "delimiter must be one character"),
        ({"fmt": "parquet"}, "Parquet has its own names"),
    ],
)
def test_setup_errors_are_config_errors(tmp_path, kwargs, message):
    src = tmp_path / "cd.txt"
    src.write_text("00001 19970101 1 11.77\n")
    options = {**CDNOW_OPTIONS, "mapping": CDNOW_MAPPING, **kwargs}
    mapping = options.pop("mapping")
    with pytest.raises(ConfigError, match=message):
        import_table(src, tmp_path / "arc", mapping, **options)


def test_an_unreadable_file_fails_loudly(tmp_path):
    src = tmp_path / "latin.csv"
    src.write_bytes(
        b"who,when\n" + b"u1,2026-01-05T10:00:00Z\n" * 3 + "Jos\xe9,2026-01-05T10:00:00Z\n".encode("latin-1")
    )
    with pytest.raises(ImportFailed, match="encoding"):
        import_table(src, tmp_path / "arc", {"user_id": "who", "ts": "when"}, constants={"type": "search"})
    stats = import_table(
        src, tmp_path / "arc2", {"user_id": "who", "ts": "when"}, constants={"type": "search"}, encoding="latin-1"
    )
    assert stats["imported"] == 4


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(tmp_path):
    def peak(n: int) -> int:
        src = tmp_path / f"big{n}.csv"
        with open(src, "w") as fh:
            fh.write("who,when,amount\n")
            for i in range(n):
                fh.write(f"user{i % 997},{1_767_600_000 + i % 1000},{i % 100}.5\n")
        gc.collect()  # cyclic garbage left by earlier tests, and the collector's counters, out of the measurement
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        import_table(
            src,
            tmp_path / f"arc{n}",
            {"user_id": "who", "ts": "when", "revenue": "amount"},
            constants={"type": "purchase"},
            batch_rows=500,
        )
        return tracemalloc.get_traced_memory()[1] - base

    tracemalloc.start()
    try:
        peak(18_000)  # first-use allocations out of the way, and pydantic-core's string cache (16k) full
        small, large = peak(3_000), peak(15_000)
    finally:
        tracemalloc.stop()
    assert large < 1.25 * small, (small, large)


def parquet_fixture(path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "order_id": pa.array(["o1", "o2", "o3", "o4"]),
            "customer": pa.array([101, 102, None, 104], pa.int64()),
            "placed_at": pa.array(
                [1_767_607_200_123_456_789, 1_767_610_800_000_000_000, 1_767_614_400_000_000_000, 0],
                pa.timestamp("ns", tz="UTC"),
            ),
            "amount": pa.array(
                [Decimal("19.99"), Decimal("5.00"), Decimal("1.00"), Decimal("1.00")], pa.decimal128(10, 2)
            ),
            "unused": pa.array(["x", "y", "z", "w"]),
        }
    )
    pq.write_table(table, path, row_group_size=2)


def test_parquet_round_trip(tmp_path):
    src = tmp_path / "orders.parquet"
    parquet_fixture(src)
    rejects = tmp_path / "rejects.jsonl"
    mapping = {"event_id": "order_id", "user_id": "customer", "ts": "placed_at", "revenue": "amount"}
    stats = import_table(src, tmp_path / "arc", mapping, constants={"type": "purchase"}, rejects=rejects, batch_rows=3)
    assert stats["format"] == "parquet" and stats["rows"] == 4 and stats["imported"] == 2
    assert stats["rejected"] == {"contract_violation": 1, "timestamp_out_of_range": 1}
    events = all_events(tmp_path / "arc")
    assert events == [
        {"event_id": "o1", "ts": 1_767_607_200_123, "user_id": "101", "type": "purchase", "revenue": 19.99},
        {"event_id": "o2", "ts": 1_767_610_800_000, "user_id": "102", "type": "purchase", "revenue": 5.0},
    ]
    assert {r["row"]: r["reason"] for r in read_rejects(rejects)} == {
        3: "contract_violation",
        4: "timestamp_out_of_range",
    }
    renamed = tmp_path / "orders.bin"  # no telling suffix: recognised by its magic bytes
    renamed.write_bytes(src.read_bytes())
    assert import_table(renamed, tmp_path / "arc2", mapping, constants={"type": "purchase"})["format"] == "parquet"


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    src = tmp_path / "orders.parquet"
    src.write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match=r"needs pyarrow: pip install 'offerstream\[parquet\]'"):
        import_table(src, tmp_path / "arc", {"user_id": "customer"}, constants={"type": "purchase"})
