"""Reading and writing JSON Lines files, gzip-compressed when the name ends in ``.gz``.

Lines are written with orjson and sorted keys, so the same records give the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps_line(obj: Any) -> bytes:
    """One JSON line, keys sorted, newline at the end."""
    return orjson.dumps(obj, option=DUMP_OPTIONS)


def open_binary(path: str | Path, mode: str = "rb") -> IO[bytes]:
    """Open ``path`` for binary reading or writing; gzip when its name ends in ``.gz``.

    ``-`` stands for standard input or output.
    """
    import sys

    if str(path) == "-":
        return sys.stdin.buffer if "r" in mode else sys.stdout.buffer
    p = Path(path)
    if "w" in mode or "a" in mode:
        p.parent.mkdir(parents=True, exist_ok=True)
    if p.name.endswith(".gz"):
        # mtime=0 keeps the gzip header free of wall-clock time: same content, same bytes.
        raw = open(p, mode)  # noqa: SIM115 - closed through the GzipFile below
        return gzip.GzipFile(filename="", mode=mode, fileobj=raw, mtime=0, compresslevel=6)  # type: ignore[return-value]
    return open(p, mode)


def iter_lines(path: str | Path) -> Iterator[bytes]:
    """The raw lines of a JSONL file (gzip or not), without their newline; blank lines are skipped."""
    with open_binary(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line


def write_lines(path: str | Path, records: Iterable[Any]) -> int:
    """Write ``records`` as JSON lines; returns how many were written."""
    n = 0
    with open_binary(path, "wb") as fh:
        for rec in records:
            fh.write(dumps_line(rec))
            n += 1
    return n
