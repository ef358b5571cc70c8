"""A bounds-checked walk over UBJSON, run before xgboost sees a model file: xgboost's own parser may crash the
process on a truncated document, this raises ValueError."""

from __future__ import annotations

import struct

_SIZES = {"Z": 0, "N": 0, "T": 0, "F": 0, "i": 1, "U": 1, "C": 1, "I": 2, "l": 4, "d": 4, "L": 8, "D": 8}
_INTS = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q"}
_MAX_DEPTH = 64


def check_ubjson(data: bytes) -> None:
    """Raise ValueError unless ``data`` is exactly one complete UBJSON object (values are not interpreted).

    >>> check_ubjson(b"{i\\x01aSi\\x02hi}")
    >>> check_ubjson(b"{i\\x01aSi\\x02h")
    Traceback (most recent call last):
    ...
    ValueError: truncated at byte 7 of 8
    """
    reader = _UbjReader(data)
    if reader.marker() != "{":
        raise ValueError("does not start with an object")
    reader.container("{", 1)
    if reader.pos != len(data):
        raise ValueError(f"{len(data) - reader.pos} bytes after the end of the document")


class _UbjReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated at byte {self.pos} of {len(self.data)}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def marker(self) -> str:
        return chr(self.take(1)[0])

    def integer(self, marker: str) -> int:
        if marker not in _INTS:
            raise ValueError(f"expected an integer marker at byte {self.pos - 1}, got {marker!r}")
        fmt = _INTS[marker]
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def value(self, marker: str, depth: int) -> None:
        if marker in _SIZES:
            self.take(_SIZES[marker])
        elif marker in ("S", "H"):
            self.take(self.integer(self.marker()))
        elif marker in ("[", "{"):
            self.container(marker, depth + 1)
        else:
            raise ValueError(f"unknown marker {marker!r} at byte {self.pos - 1}")

    def container(self, kind: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deep")
        item_type, marker = None, self.marker()
        if marker == "$":
            item_type, marker = self.marker(), self.marker()
            if marker != "#":
                raise ValueError(f"typed container without a count at byte {self.pos - 1}")
        if marker == "#":
            count = self.integer(self.marker())
            if count < 0:
                raise ValueError(f"negative count at byte {self.pos - 1}")
            if kind == "[" and item_type in _SIZES:
                self.take(_SIZES[item_type] * count)  # a typed array of numbers: skip it whole
                return
            for _ in range(count):
                if kind == "{":
                    self.take(self.integer(self.marker()))  # the key
                self.value(item_type or self.marker(), depth)
            return
        end = "]" if kind == "[" else "}"
        while marker != end:
            if kind == "{":
                self.take(self.integer(marker))  # the key
                marker = self.marker()
            self.value(marker, depth)
            marker = self.marker()


# -- files ----------------------------------------------------------------------------------------------
