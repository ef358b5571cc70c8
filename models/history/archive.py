"""The day-partitioned archive of events and decisions that the nightly retrain reads back.

## Archive format

```
ROOT/<kind>/date=YYYY-MM-DD/part-<writer_id>.jsonl.gz      kind: events | decisions
```

- **One JSON object per line**, written with orjson and sorted keys: an event exactly as the contract gives it
  (`event_to_dict`, `ts` in epoch milliseconds), a decision exactly as it went to the decisions topic.
- **The day** is the record's event time in UTC (the writer is given `ts_ms`), not the time it was written.
- **One part file per writer**: several workers (and `offerstream import`) may write the same day at once, each
  to its own `part-<writer_id>` file (the id is reduced to `[A-Za-z0-9_.-]`). A writer id must be used by one
  process at a time.
- **Durability: one gzip member per flush.** `flush()` compresses everything buffered for a file into one
  complete gzip member, appends it (`open 'ab'`, write, `fsync`, close; a new file's directory is fsynced too)
  and returns only then; the worker commits its Kafka offsets after that. Concatenated members are a valid gzip
  file (`zcat` reads it). A crash mid-flush can leave only the last member torn; readers keep every complete
  member and log a warning naming the file, and a writer that finds a torn tail on a file it reopens cuts it off
  before appending (that data was never acknowledged, so its offsets were never committed and it comes again).
- **At-least-once**: a batch flushed but not yet committed when a worker dies is archived twice. Readers
  (`read_day`, `iter_archive`) drop repeats of an `event_id` (events) or `decision_id` (decisions), keeping the
  first, and return a day sorted by (time, id), whatever the number of parts or the order they were written in.

>>> import shutil, tempfile
>>> root = tempfile.mkdtemp()
>>> with ArchiveWriter(root, "worker-0/1234") as w:
...     w.append("events", {"event_id": "e2", "ts": 1767657600000, "user_id": "u1", "type": "page_view"},
...              ts_ms=1767657600000)
...     w.append("events", {"event_id": "e1", "ts": 1767657599999, "user_id": "u1", "type": "page_view"},
...              ts_ms=1767657599999)
>>> archive_days(root, "events")
[datetime.date(2026, 1, 5), datetime.date(2026, 1, 6)]
>>> [r["event_id"] for r in read_day(root, "events", archive_days(root, "events")[1])]
['e2']
>>> sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.gz"))
['events/date=2026-01-05/part-worker-0_1234.jsonl.gz', 'events/date=2026-01-06/part-worker-0_1234.jsonl.gz']
>>> shutil.rmtree(root)
"""

from __future__ import annotations

import errno
import logging
import os
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from models.errors import ArchiveError
from stream.core.jsonl import dumps_line

log = logging.getLogger(__name__)

KINDS = ("events", "decisions")
ID_FIELDS = {"events": "event_id", "decisions": "decision_id"}
_DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip wrapper around deflate
_CHUNK = 1 << 20
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def day_of(ts_ms: int) -> date:
    """The UTC day of an epoch-millisecond time.

    >>> day_of(1767657599999), day_of(1767657600000)
    (datetime.date(2026, 1, 5), datetime.date(2026, 1, 6))
    """
    return date.fromordinal(_EPOCH_ORDINAL + ts_ms // _DAY_MS)


def sanitise_writer_id(writer_id: str) -> str:
    """The writer id as it appears in part file names: anything outside ``[A-Za-z0-9_.-]`` becomes ``_``.

    >>> sanitise_writer_id("worker 0/1234")
    'worker_0_1234'
    """
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", writer_id)
    if not clean:
        raise ValueError("writer_id must not be empty")
    return clean


def day_dir(root: str | Path, kind: str, day: date) -> Path:
    """The folder holding one kind's parts for one day."""
    _check_kind(kind)
    return Path(root) / kind / f"date={day.isoformat()}"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown archive kind {kind!r}; known: {list(KINDS)}")


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems that cannot sync folders
            raise
    finally:
        os.close(fd)


class ArchiveWriter:
    """Buffers records per (kind, day) and appends them to this writer's part files on :meth:`flush`.

    ``max_buffer_bytes`` bounds memory: an :meth:`append` that takes the buffer past it flushes. ``compresslevel``
    is zlib's (6: about 8x smaller events; 1 compresses 2-3x faster and writes about 25% more bytes).
    """

    def __init__(
        self, root: str | Path, writer_id: str, *, max_buffer_bytes: int = 32 << 20, compresslevel: int = 6
    ) -> None:
        self.root = Path(root)
        self.writer_id = sanitise_writer_id(writer_id)
        self.max_buffer_bytes = max_buffer_bytes
        self.compresslevel = compresslevel
        # (kind, days since 1970-01-01) -> lines. A bytearray, not a list: orjson's bytes each hold a 4 KiB block.
        self._buffers: dict[tuple[str, int], bytearray] = {}
        self._buffered_bytes = 0
        self._checked: set[Path] = set()  # part files this writer has already verified or created
        self._closed = False

    def part_path(self, kind: str, day: date) -> Path:
        """Where this writer's records of ``kind`` for ``day`` go."""
        return day_dir(self.root, kind, day) / f"part-{self.writer_id}.jsonl.gz"

    def append(self, kind: str, record: dict[str, Any], ts_ms: int) -> None:
        """Buffer one record (serialised now, so later changes to ``record`` do not matter)."""
        if self._closed:
            raise ArchiveError("append on a closed ArchiveWriter")
        line = dumps_line(record)
        key = (kind, ts_ms // _DAY_MS)
        buf = self._buffers.get(key)
        if buf is None:
            _check_kind(kind)
            buf = self._buffers[key] = bytearray()
        buf += line
        self._buffered_bytes += len(line)
        if self._buffered_bytes >= self.max_buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Append one gzip member per buffered (kind, day) and fsync it; durable when this returns.

        An ``OSError`` (disk full...) propagates with the unwritten days still buffered: the caller must not
        commit its offsets, and may call :meth:`flush` again.
        """
        for key in sorted(self._buffers):
            kind, day_number = key
            day = date.fromordinal(_EPOCH_ORDINAL + day_number)
            lines = self._buffers[key]
            self._write_member(self.part_path(kind, day), lines)
            del self._buffers[key]
            self._buffered_bytes -= len(lines)

    def close(self) -> None:
        """Flush what is buffered; the writer accepts nothing more."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _write_member(self, path: Path, data: bytearray) -> None:
        # zlib's gzip header has no file name and mtime 0: the same records give the same bytes
        comp = zlib.compressobj(self.compresslevel, zlib.DEFLATED, _GZIP_WBITS)
        member = comp.compress(data) + comp.flush()
        new_file = path not in self._checked and not path.exists()
        if new_file:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif path not in self._checked:
            _cut_torn_tail(path)
        self._checked.discard(path)  # until this member is down, the next write must check the tail again
        with open(path, "ab") as fh:
            fh.write(member)
            fh.flush()
            os.fsync(fh.fileno())
        if new_file:
            _fsync_dir(path.parent)
            _fsync_dir(path.parent.parent)
        self._checked.add(path)


def _iter_members(path: Path) -> Iterator[tuple[bytes, int]]:
    """Each complete gzip member's content and the file offset where it ends; stops at a torn or corrupt tail."""
    with open(path, "rb") as fh:
        decomp = zlib.decompressobj(_GZIP_WBITS)
        parts: list[bytes] = []
        consumed = 0  # bytes of the file handed to decompressors so far
        while chunk := fh.read(_CHUNK):
            data = chunk
            while data:
                try:
                    parts.append(decomp.decompress(data))
                except zlib.error:
                    return
                if not decomp.eof:
                    consumed += len(data)
                    break
                used = len(data) - len(decomp.unused_data)
                consumed += used
                yield b"".join(parts), consumed
                data, parts = decomp.unused_data, []
                decomp = zlib.decompressobj(_GZIP_WBITS)
        # a member still open here is torn: its content is not yielded, and the caller sees the offset short


def _cut_torn_tail(path: Path) -> None:
    """Truncate a part file to its last complete member before appending to it."""
    good = 0
    for _, end in _iter_members(path):
        good = end
    size = path.stat().st_size
    if good < size:
        log.warning("archive part %s: cutting %d bytes of torn gzip tail before appending", path, size - good)
        with open(path, "r+b") as fh:
            fh.truncate(good)
            fh.flush()
            os.fsync(fh.fileno())


def _read_part(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    good = 0
    for content, end in _iter_members(path):
        good = end
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ArchiveError(f"{path}: member ending at byte {end}, line {n}: not JSON ({exc})") from None
    size = path.stat().st_size
    if good < size:
        log.warning(
            "archive part %s: %d bytes after byte %d are a torn or corrupt gzip member (a crash mid-write?); "
            "kept the %d complete records before them",
            path,
            size - good,
            good,
            len(records),
        )
    return records


def record_ts_ms(record: dict[str, Any]) -> int:
    """A record's event time: ``ts_ms`` (decisions), else an integer ``ts`` (events), else ISO ``ts``.

    >>> record_ts_ms({"ts": 5}), record_ts_ms({"ts": "2026-01-05T10:00:00Z", "ts_ms": 7})
    (5, 7)
    """
    value = record.get("ts_ms", record.get("ts"))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        dt = datetime.fromisoformat(value)
        return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    raise ArchiveError(f"record without a usable ts/ts_ms: {str(record)[:200]}")


def read_day(root: str | Path, kind: str, day: date, *, dedupe: bool = True) -> list[dict[str, Any]]:
    """Every record of ``kind`` archived for ``day``, all parts together, sorted by (time, id).

    With ``dedupe`` (the default) a repeated ``event_id``/``decision_id`` (at-least-once delivery, a re-run
    import) is kept once: the first in part-name then file order.
    """
    folder = day_dir(root, kind, day)
    id_field = ID_FIELDS[kind]
    records: list[dict[str, Any]] = []
    for part in sorted(folder.glob("part-*.jsonl.gz")):
        records.extend(_read_part(part))
    if dedupe:
        seen: set[str] = set()
        unique = []
        for rec in records:
            rid = rec.get(id_field)
            if isinstance(rid, str):
                if rid in seen:
                    continue
                seen.add(rid)
            unique.append(rec)
        records = unique
    keyed = [(record_ts_ms(r), str(r.get(id_field, "")), r) for r in records]
    keyed.sort(key=lambda k: k[:2])  # stable: id-less ties keep part-name then file order
    return [k[2] for k in keyed]


def archive_days(root: str | Path, kind: str) -> list[date]:
    """The days that have at least one part file of ``kind``, oldest first."""
    _check_kind(kind)
    base = Path(root) / kind
    if not base.is_dir():
        return []
    days = []
    for sub in base.iterdir():
        m = _DATE_DIR.match(sub.name)
        if m and sub.is_dir() and any(sub.glob("part-*.jsonl.gz")):
            days.append(date.fromisoformat(m.group(1)))
    return sorted(days)


def iter_archive(
    root: str | Path, kind: str, start: date | None = None, end: date | None = None
) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """``(day, records)`` for each archived day in ``[start, end]`` (inclusive), oldest first, one day in memory."""
    for day in archive_days(root, kind):
        if (start is None or day >= start) and (end is None or day <= end):
            yield day, read_day(root, kind, day)
