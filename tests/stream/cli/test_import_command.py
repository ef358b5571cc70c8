"""`offerstream import`: an export file into the archive through the command line, mapping, rejects and errors."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from models.history.archive import archive_days, read_day
from stream.cli import main

ORDERS_CSV = """order,customer,when,sku,price,qty
o1,c1,2026-01-05T10:00:00Z,p1,19.90,1
o2,c2,2026-01-05T23:59:59Z,p2,5.00,3
o3,c1,2026-01-06T00:00:00Z,p1,19.90,2
o4,c3,not a time,p3,1.00,1
o5,c3,2026-01-06T08:00:00Z,p3,-1,1
o6,c4,2026-01-06T09:00:00Z
"""
ORDERS_MAP = ["--map", "event_id=order", "--map", "user_id=customer", "--map", "ts=when", "--map", "product_id=sku"]
ORDERS_MAP += ["--map", "price=price", "--map", "quantity=qty", "--set", "type=purchase"]
CDNOW_TXT = "00001 19970101 1 11.77\n00002  19970112\t2 12.00\n00003 19970225 5 77.00\n\n00004 19970301 1\n"
# The example of `offerstream import --help`, verbatim but for the paths.
CDNOW_ARGS = [
    "--no-header",
    "--delimiter",
    "whitespace",
    "--columns",
    "customer,date,cds,dollars",
    "--map",
    "user_id=customer",
    "--map",
    "ts=date",
    "--ts-format",
    "%Y%m%d",
    "--map",
    "quantity=cds",
    "--map",
    "revenue=dollars",
    "--set",
    "type=purchase",
]


def run_import(*args: object):
    return CliRunner().invoke(main, ["import", *map(str, args)])


def all_events(root: Path) -> list[dict]:
    return [r for d in archive_days(root, "events") for r in read_day(root, "events", d)]


def test_csv_import_writes_day_partitions(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    arc = tmp_path / "archive"
    result = run_import(src, "--archive", arc, *ORDERS_MAP, "--json")
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert stats["rows"] == 6 and stats["imported"] == 3 and stats["rejected_total"] == 3
    assert "imported 3 of 6 rows" in result.stderr and "--rejects PATH" in result.stderr
    assert archive_days(arc, "events") == [date(2026, 1, 5), date(2026, 1, 6)]  # UTC event days
    day5 = read_day(arc, "events", date(2026, 1, 5))
    assert [e["event_id"] for e in day5] == ["o1", "o2"]
    assert day5[0] == {
        "event_id": "o1",
        "ts": 1767607200000,
        "user_id": "c1",
        "type": "purchase",
        "product_id": "p1",
        "price": 19.9,
        "quantity": 1,
    }
    assert [e["event_id"] for e in read_day(arc, "events", date(2026, 1, 6))] == ["o3"]
    assert sorted(p.name for p in arc.rglob("*.gz")) == ["part-import.jsonl.gz"] * 2


def test_reimport_is_deduplicated_and_writer_id_names_the_part(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    arc = tmp_path / "archive"
    for _ in range(2):
        assert run_import(src, "--archive", arc, *ORDERS_MAP, "--writer-id", "backfill 1").exit_code == 0
    assert {p.name for p in arc.rglob("*.gz")} == {"part-backfill_1.jsonl.gz"}
    assert [e["event_id"] for e in all_events(arc)] == ["o1", "o2", "o3"]


def test_rejects_file_gets_bad_rows_with_reasons(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    rejects = tmp_path / "rejects.jsonl"
    result = run_import(src, "--archive", tmp_path / "archive", *ORDERS_MAP, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert f"written to {rejects}" in result.output
    rows = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["row"], r["line"], r["reason"]) for r in rows] == [
        (4, 5, "bad_timestamp"),
        (5, 6, "absurd_value"),
        (6, 7, "malformed_row"),
    ]
    assert rows[0]["raw"]["when"] == "not a time" and "price" in rows[1]["detail"]
    assert rows[2]["raw"] == ["o6", "c4", "2026-01-06T09:00:00Z"]


def test_missing_required_mapping_is_a_clean_error(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    arc = tmp_path / "archive"
    result = run_import(src, "--archive", arc, "--map", "ts=when", "--set", "type=purchase")
    assert result.exit_code == 2
    assert "user_id" in result.output and "--map user_id=COLUMN" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # a usage error, no crash
    assert not arc.exists()


def test_user_errors_are_clean(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    base = [src, "--archive", tmp_path / "archive"]
    cases = {
        "not contract fields: customer": [*base, *ORDERS_MAP, "--map", "customer=customer"],
        "no column(s) ['buyer']": [*base, "--map", "user_id=buyer", "--map", "ts=when", "--set", "type=purchase"],
        "is not FIELD=VALUE": [*base, *ORDERS_MAP, "--set", "device"],
        "not a strptime format": [*base, *ORDERS_MAP, "--ts-format", "epoch_ms"],
        "unknown time zone": [*base, *ORDERS_MAP, "--tz", "Mars/Olympus"],
        "delimiter must be one character": [*base, *ORDERS_MAP, "--delimiter", ";;"],
    }
    for message, args in cases.items():
        result = run_import(*args)
        assert result.exit_code in (1, 2), (message, result.output)
        assert message in result.output, (message, result.output)
        assert isinstance(result.exception, SystemExit), (message, result.exception)


def test_cdnow_like_whitespace_file(tmp_path):
    src = tmp_path / "CDNOW_master.txt"
    src.write_text(CDNOW_TXT)
    arc = tmp_path / "data" / "archive"
    rejects = tmp_path / "rejects.jsonl.gz"
    result = run_import(src, "--archive", arc, *CDNOW_ARGS, "--rejects", rejects, "--json")
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.stdout)
    assert (stats["rows"], stats["imported"], stats["rejected"]) == (4, 3, {"malformed_row": 1})
    assert (stats["first_day"], stats["last_day"], stats["days"]) == ("1997-01-01", "1997-02-25", 3)
    events = all_events(arc)
    assert events[0] == {
        "event_id": "CDNOW_master-1",
        "ts": 852076800000,  # 1997-01-01T00:00:00Z
        "user_id": "00001",
        "type": "purchase",
        "quantity": 1,
        "revenue": 11.77,
    }
    assert [(e["user_id"], e["quantity"], e["revenue"]) for e in events[1:]] == [("00002", 2, 12.0), ("00003", 5, 77.0)]


def test_id_prefix_and_time_zone(tmp_path):
    src = tmp_path / "CDNOW_master.txt"
    src.write_text(CDNOW_TXT)
    arc = tmp_path / "archive"
    result = run_import(src, "--archive", arc, *CDNOW_ARGS, "--id-prefix", "cdnow", "--tz", "America/New_York")
    assert result.exit_code == 0, result.output
    first = all_events(arc)[0]
    assert first["event_id"] == "cdnow-1" and first["ts"] == 852094800000  # midnight in New York is 05:00 UTC


def test_parquet_import(tmp_path):
    src = tmp_path / "orders.parquet"
    table = pa.table(
        {
            "order": ["a1", "a2", "a3"],
            "customer": [17850.0, 13047.0, None],
            "at": pa.array([1767607200000, 1767700000000, 1767700000000], type=pa.timestamp("ms", tz="UTC")),
            "total": [10.5, 20.0, 3.0],
        }
    )
    pq.write_table(table, src)
    arc = tmp_path / "archive"
    rejects = tmp_path / "rejects.jsonl"
    args = ["--map", "event_id=order", "--map", "user_id=customer", "--map", "ts=at", "--map", "revenue=total"]
    result = run_import(src, "--archive", arc, *args, "--set", "type=purchase", "--rejects", rejects, "--json")
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.stdout)
    assert (stats["format"], stats["imported"], stats["rejected"]) == ("parquet", 2, {"contract_violation": 1})
    events = all_events(arc)
    assert [(e["event_id"], e["user_id"], e["ts"], e["revenue"]) for e in events] == [
        ("a1", "17850", 1767607200000, 10.5),
        ("a2", "13047", 1767700000000, 20.0),
    ]
    assert orjson.loads(rejects.read_bytes())["row"] == 3


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    src = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"customer": ["c1"], "at": ["2026-01-05T10:00:00Z"]}), src)
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import pyarrow` now raises ImportError
    result = run_import(
        src, "--archive", tmp_path / "archive", "--map", "user_id=customer", "--map", "ts=at", "--set", "type=purchase"
    )
    assert result.exit_code == 1
    assert "pip install 'offerstream[parquet]'" in result.output
    assert isinstance(result.exception, SystemExit)


def test_not_parquet_is_a_clean_error(tmp_path):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS_CSV)
    result = run_import(src, "--archive", tmp_path / "archive", *ORDERS_MAP, "--format", "parquet")
    assert result.exit_code == 1 and "cannot read as Parquet" in result.output, result.output


def test_help_explains_the_mapping():
    result = CliRunner().invoke(main, ["import", "--help"])
    assert result.exit_code == 0
    assert "--map FIELD=COLUMN" in result.output and "--set type=purchase" in result.output
    assert "CDNOW_master.txt" in result.output and "pip install 'offerstream[parquet]'" in result.output
