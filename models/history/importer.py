"""Backfill the archive from a warehouse export: CSV (or whitespace-separated text) or Parquet, with a column mapping.

Each row becomes an event: ``mapping`` names the source column of each contract field, ``constants`` sets fields
for every row (``{"type": "purchase"}``), and ``event_id``, when not mapped, is ``<id_prefix or file stem>-<row>``
(rows counted from 1, header excluded), so importing the same file twice gives the same ids and the archive's
readers keep each event once. Numbers are converted, then every row goes through the one contract
(:func:`stream.core.contract.parse_event`) and the worker's time range (1995-2100). A row that fails is never dropped
silently: it is counted by reason and, with ``rejects``, written there (JSON lines: ``row``, ``line`` for text
files, ``reason``, ``detail``, ``raw``). Reasons: ``malformed_row`` (wrong number of fields), ``bad_timestamp``,
``bad_number``, ``timestamp_out_of_range``, and the contract's ``contract_violation`` and ``absurd_value``. An
empty cell is an absent field. Id fields exported from a nullable integer column (``17850.0``) become ``17850``.

Timestamps: with ``ts_format`` (``strptime``, e.g. ``%Y%m%d``) a time without an offset is in ``tz`` (an IANA
zone; a time repeated by a DST fall-back is the earlier instant, one skipped by a spring-forward takes the
offset from before the change); without it, ISO-8601 (naive means ``tz``) or an
integer epoch: ``ts_unit`` ``"ms"``, ``"s"`` or ``"auto"`` (below 10^11 seconds, else milliseconds, which is
unambiguous for every time in 1995-2100). Parquet timestamp and date columns are used as they are (naive ones in
``tz``). Reading streams: CSV row by row, Parquet record batch by record batch; the archive is flushed every
``batch_rows`` rows.

>>> import pathlib, shutil, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "cdnow.txt").write_text("00001 19970101 1 11.77\\n00002 19970112 2 -5\\n")
>>> stats = import_table(d / "cdnow.txt", d / "archive", {"user_id": "cust", "ts": "date", "quantity": "cds",
...     "revenue": "amount"}, constants={"type": "purchase"}, ts_format="%Y%m%d", delimiter="whitespace",
...     header=False, columns=["cust", "date", "cds", "amount"])
>>> stats["imported"], stats["rejected"], stats["first_ts"]
(1, {'absurd_value': 1}, '1997-01-01T00:00:00.000Z')
>>> shutil.rmtree(d)
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from models.errors import ImportFailed
from models.history.archive import ArchiveWriter, day_of
from stream.core.contract import Event, event_to_dict, parse_event
from stream.core.errors import ConfigError, InvalidMessage
from stream.core.jsonl import DUMP_OPTIONS, open_binary

log = logging.getLogger(__name__)

FIELDS = frozenset(f.alias or name for name, f in Event.model_fields.items())
FLOAT_FIELDS = frozenset({"price", "cart_value", "revenue"})
INT_FIELDS = frozenset({"quantity"})
TS_MIN_MS = 788_918_400_000  # 1995-01-01T00:00:00Z, the worker's default processing.ts_min
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, processing.ts_max
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_DECIMAL_TEXT = re.compile(r"^[+-]?\d+\.\d*$")
_WHOLE_FLOAT_TEXT = re.compile(r"^\d+\.0+$")
ID_FIELDS = frozenset({"event_id", "user_id", "session_id", "product_id", "decision_id"})
_PARQUET_SUFFIXES = (".parquet", ".pq")


class RowRejected(Exception):
    """One row that cannot become a valid event (internal: counted and written to the rejects file)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def iso_utc(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC text.

    >>> iso_utc(852076800000)
    '1997-01-01T00:00:00.000Z'
    """
    return (_EPOCH + ts_ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TimeParser:
    """Source timestamps to epoch milliseconds UTC, as the module docstring describes.

    >>> TimeParser("%Y%m%d", "America/New_York")("19970101"), TimeParser(None, "UTC")("2026-01-05T10:00:00")
    (852094800000, 1767607200000)
    """

    def __init__(self, ts_format: str | None, tz: str, ts_unit: str = "auto") -> None:
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {tz!r} (an IANA name such as 'UTC' or 'Europe/Berlin')") from None
        if ts_unit not in ("auto", "s", "ms"):
            raise ConfigError(f"ts_unit must be 'auto', 's' or 'ms', got {ts_unit!r}")
        self.ts_format, self.ts_unit = ts_format, ts_unit
        self._text = functools.lru_cache(maxsize=4_096)(self._parse_text)  # daily data repeats its dates

    def __call__(self, value: Any) -> int:
        if isinstance(value, str):
            return self._text(value.strip())
        if isinstance(value, datetime):
            return self._ms(value)
        if isinstance(value, date):
            return self._ms(datetime.combine(value, time()))
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return self._epoch(value)
        raise ValueError(f"not a timestamp: {type(value).__name__}")

    def _ms(self, dt: datetime) -> int:
        aware = dt if dt.tzinfo else dt.replace(tzinfo=self.zone)
        return (aware - _EPOCH) // _MS

    def _epoch(self, value: float | int | Decimal) -> int:
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        number = Decimal(value)  # exact for ints and decimal text, and keeps float rounding out of the ms
        seconds = self.ts_unit == "s" or (self.ts_unit == "auto" and abs(number) < 10**11)
        return round(number * 1000) if seconds else round(number)

    def _parse_text(self, text: str) -> int:
        if self.ts_format is not None:
            return self._ms(datetime.strptime(text, self.ts_format))  # noqa: DTZ007 - naive means tz, in _ms
        if _INT_TEXT.match(text):
            return self._epoch(int(text))
        if _DECIMAL_TEXT.match(text):
            return self._epoch(Decimal(text))
        return self._ms(datetime.fromisoformat(text))


def _text(field: str, value: Any) -> str:
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    if field in ID_FIELDS and _WHOLE_FLOAT_TEXT.match(text):
        return text.split(".")[0]  # an integer id column with nulls, exported as floats: 17850.0 is 17850
    return text


def _number(field: str, value: Any) -> float | int:
    if isinstance(value, bool):
        raise RowRejected("bad_number", f"{field}: {value!r} is not a number")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RowRejected("bad_number", f"{field}: {str(value)[:60]!r} is not a number") from None
    if not math.isfinite(number):
        raise RowRejected("absurd_value", f"{field}: {value!r} is not finite")
    if field in INT_FIELDS:
        if number != int(number):
            raise RowRejected("bad_number", f"{field}: {value!r} is not a whole number")
        return int(number)
    return number


class _RowBuilder:
    """A source row (column -> value) to a validated :class:`Event`."""

    def __init__(self, mapping: Mapping[str, str], constants: Mapping[str, Any], times: TimeParser, prefix: str):
        self.mapping, self.times, self.prefix = dict(mapping), times, prefix
        self.constants: dict[str, Any] = {}
        for field, value in constants.items():
            try:
                self.constants[field] = self._convert(field, value)
            except (RowRejected, ValueError) as exc:
                raise ConfigError(f"constant {field}={value!r}: {exc}") from None

    def _convert(self, field: str, value: Any) -> Any:
        if field == "ts":
            try:
                return self.times(value)
            except (ValueError, OverflowError) as exc:
                raise RowRejected("bad_timestamp", f"ts: {str(value)[:60]!r}: {exc}") from None
        if field in FLOAT_FIELDS or field in INT_FIELDS:
            return _number(field, value)
        return _text(field, value)

    def build(self, raw: Mapping[str, Any], row: int) -> Event:
        body = dict(self.constants)
        for field, column in self.mapping.items():
            value = raw.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue  # an empty cell is an absent field; the contract says whether that is allowed
            body[field] = self._convert(field, value)
        if "event_id" not in self.mapping:
            body["event_id"] = f"{self.prefix}-{row}"
        ts = body.get("ts")
        if isinstance(ts, int) and not TS_MIN_MS <= ts < TS_MAX_MS:
            raise RowRejected("timestamp_out_of_range", f"ts {ts} is outside 1995-2100 (wrong ts_unit/ts_format?)")
        try:
            return parse_event(orjson.dumps(body))
        except InvalidMessage as exc:
            raise RowRejected(exc.reason.value, exc.detail) from None


def _open_text(path: Path, encoding: str) -> IO[str]:
    return io.TextIOWrapper(open_binary(path, "rb"), encoding=encoding, newline="")


def _text_rows(
    path: Path, delimiter: str, header: bool, columns: Sequence[str] | None, encoding: str
) -> tuple[list[str], Iterator[tuple[int, int | None, dict[str, str] | list[str]]]]:
    """Column names and an iterator of (row number, line number, row as dict — or list when it has the wrong width)."""
    fh = _open_text(path, encoding)
    if delimiter == "whitespace":
        lines = ((n, line.split()) for n, line in enumerate(fh, 1))
    else:
        reader = csv.reader(fh, delimiter=delimiter)
        lines = ((reader.line_num, fields) for fields in reader)
    cells = _readable((c for c in lines if c[1] and any(x.strip() for x in c[1])), path, encoding)  # no blank lines
    first = next(cells, None) if header else None
    names = [n.strip() for n in (columns or (first[1] if first else []))]
    if not names:
        fh.close()
        raise ConfigError(f"{path}: no header row; give the column names (columns=...)")

    def rows() -> Iterator[tuple[int, int | None, dict[str, str] | list[str]]]:
        with fh:
            for row, (line, fields) in enumerate(cells, 1):
                yield row, line, dict(zip(names, fields, strict=True)) if len(fields) == len(names) else fields

    return names, rows()


def _readable(lines: Iterator[tuple[int, list[str]]], path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """The lines, with a broken quote or an undecodable byte reported as :class:`ImportFailed` naming the place."""
    line = 0
    try:
        for line, fields in lines:
            yield line, fields
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path}: unreadable after line {line}: {exc} (encoding={encoding!r}?)") from None


def _parquet_rows(
    path: Path, wanted: Sequence[str], batch_rows: int
) -> tuple[list[str], Iterator[tuple[int, int | None, dict[str, Any] | list[Any]]]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"{path} is Parquet, and reading Parquet needs pyarrow: pip install 'offerstream[parquet]'"
        ) from None
    pf = pq.ParquetFile(path)
    names = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, int | None, dict[str, Any] | list[Any]]]:
        row = 0
        with pf:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=[c for c in wanted if c in names]):
                arrays = [
                    a.cast(pa.timestamp("us", a.type.tz), safe=False) if pa.types.is_timestamp(a.type) else a
                    for a in batch.columns
                ]  # nanosecond timestamps have no Python datetime; microseconds are plenty for milliseconds
                for raw in pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pylist():
                    row += 1
                    yield row, None, raw

    return names, rows()


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "tsv", "parquet"):
            raise ConfigError(f"unknown format {fmt!r}: csv, tsv or parquet")
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    with open(path, "rb") as fh:
        return "parquet" if fh.read(4) == b"PAR1" else "csv"


def _check_fields(mapping: Mapping[str, str], constants: Mapping[str, Any]) -> None:
    unknown = sorted((set(mapping) | set(constants)) - FIELDS)
    if unknown:
        raise ConfigError(f"not contract fields: {unknown}; the contract has {sorted(FIELDS)}")
    both = sorted(set(mapping) & set(constants))
    if both:
        raise ConfigError(f"fields both mapped and constant: {both}")


def _check_columns(mapping: Mapping[str, str], names: Sequence[str], path: Path) -> None:
    missing = sorted(set(mapping.values()) - set(names))
    if missing:
        raise ConfigError(f"{path}: no column(s) {missing}; columns are {list(names)[:50]}")
    duplicated = sorted(c for c in set(mapping.values()) if list(names).count(c) > 1)
    if duplicated:
        raise ConfigError(f"{path}: column(s) {duplicated} appear more than once")


def import_table(
    path: str | Path,
    archive_root: str | Path,
    mapping: Mapping[str, str],
    *,
    fmt: str | None = None,
    constants: Mapping[str, Any] | None = None,
    ts_format: str | None = None,
    tz: str = "UTC",
    ts_unit: str = "auto",
    delimiter: str | None = None,
    header: bool = True,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8-sig",
    writer_id: str = "import",
    rejects: str | Path | None = None,
    id_prefix: str | None = None,
    batch_rows: int = 50_000,
) -> dict[str, Any]:
    """Import one export file into the archive's ``events``; returns the counts (see the module docstring)."""
    path = Path(path)
    constants = dict(constants or {})
    fmt = _detect_format(path, fmt)
    _check_fields(mapping, constants)
    prefix = id_prefix or Path(path.name.removesuffix(".gz")).stem
    builder = _RowBuilder(mapping, constants, TimeParser(ts_format, tz, ts_unit), prefix)
    if fmt == "parquet":
        if columns:
            raise ConfigError("columns names the fields of a text file without a header; Parquet has its own names")
        names, rows = _parquet_rows(path, list(mapping.values()), batch_rows)
    else:
        sep = {None: "\t" if fmt == "tsv" else ",", "tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
        if sep is None or (sep != "whitespace" and len(sep) != 1):
            raise ConfigError(f"delimiter must be one character, 'tab' or 'whitespace', got {delimiter!r}")
        names, rows = _text_rows(path, sep, header, columns, encoding)
    _check_columns(mapping, names, path)
    stats = _Stats()
    with ArchiveWriter(archive_root, writer_id) as writer, _RejectSink(rejects) as sink:
        for row, line, raw in rows:
            stats.rows += 1
            try:
                if not isinstance(raw, dict):
                    raise RowRejected("malformed_row", f"{len(raw)} fields where the header has {len(names)}")
                ev = builder.build(raw, row)
            except RowRejected as exc:
                stats.rejected[exc.reason] += 1
                sink.write({"row": row, "line": line, "reason": exc.reason, "detail": exc.detail, "raw": raw})
                continue
            writer.append("events", event_to_dict(ev), ev.ts_ms)
            stats.add(ev.ts_ms)
            if stats.rows % batch_rows == 0:
                writer.flush()
    result = stats.result(path, fmt)
    log.info("imported %s: %s", path, result)
    return result


class _RejectSink:
    """Rejected rows as JSON lines (gzip when the name ends in .gz); nothing when no path is given."""

    def __init__(self, path: str | Path | None) -> None:
        self._fh = open_binary(path, "wb") if path is not None else None
        self._write: Callable[[Any], bytes] = functools.partial(orjson.dumps, option=DUMP_OPTIONS, default=str)

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(self._write({k: v for k, v in record.items() if v is not None}))

    def __enter__(self) -> _RejectSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


class _Stats:
    def __init__(self) -> None:
        self.rows = self.imported = 0
        self.rejected: Counter[str] = Counter()
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.days: set[date] = set()

    def add(self, ts_ms: int) -> None:
        self.imported += 1
        self.first_ts = ts_ms if self.first_ts is None else min(self.first_ts, ts_ms)
        self.last_ts = ts_ms if self.last_ts is None else max(self.last_ts, ts_ms)
        self.days.add(day_of(ts_ms))

    def result(self, path: Path, fmt: str) -> dict[str, Any]:
        return {
            "path": str(path),
            "format": fmt,
            "rows": self.rows,
            "imported": self.imported,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "first_ts": iso_utc(self.first_ts) if self.first_ts is not None else None,
            "last_ts": iso_utc(self.last_ts) if self.last_ts is not None else None,
            "days": len(self.days),
            "first_day": min(self.days).isoformat() if self.days else None,
            "last_day": max(self.days).isoformat() if self.days else None,
        }
