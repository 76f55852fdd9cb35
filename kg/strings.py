"""A compact, immutable table of strings stored as one UTF-8 blob plus offsets.

Why not a list of str: a compiled KG holds ~100k IRIs and labels per million triples, and a
server reloads them at start-up. A blob + offsets loads as two arrays with no per-string work,
and a sorted table answers look-ups by binary search with no dict to build.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import overload

import numpy as np


class StringTable(Sequence[str]):
    """Strings ``0..n-1`` packed as ``blob[offsets[i]:offsets[i+1]]`` (UTF-8).

    Args:
        blob: uint8 array of concatenated UTF-8 bytes.
        offsets: int64 array of length ``n + 1``, starting at 0.
    """

    __slots__ = ("_bytes", "_offsets_view", "blob", "offsets")

    def __init__(self, blob: np.ndarray | bytes, offsets: np.ndarray):
        # one copy of the text: ``blob`` is a read-only view of the bytes that `raw` slices
        if isinstance(blob, bytes):
            self._bytes = blob
        else:
            self._bytes = np.ascontiguousarray(blob, dtype=np.uint8).tobytes()
        self.blob = np.frombuffer(self._bytes, dtype=np.uint8)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        # the offsets read as Python ints without a list of them (a 1M-entity KG's tables
        # held 4.7M ints, 180 MB, as lists); an item costs ~50 ns more than a list's
        self._offsets_view: memoryview | None = None

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringTable:
        """The table of ``strings``, encoded at once: no bytes object per string (on a KG's
        million IRIs those, their join and a copy of it were the compile's last peak)."""
        items = strings if isinstance(strings, Collection) else list(strings)
        text = "".join(items)
        data = text.encode("utf-8")
        if len(data) == len(text):  # ASCII: a string's bytes are its characters
            lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        else:
            lengths = np.fromiter(
                (len(s.encode("utf-8")) for s in items), dtype=np.int64, count=len(items)
            )
        del text
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _bounds(self) -> memoryview:
        if self._offsets_view is None:
            self._offsets_view = self.offsets.data.cast("B").cast("q")
        return self._offsets_view

    def raw(self, i: int) -> bytes:
        o = self._bounds()
        return self._bytes[o[i] : o[i + 1]]

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            o, b = self._bounds(), self._bytes
            return [b[o[j] : o[j + 1]].decode("utf-8") for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"string index {i} out of range for a table of {n}")
        return self.raw(i).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        o = self._bounds()
        b = self._bytes
        for i in range(len(o) - 1):
            yield b[o[i] : o[i + 1]].decode("utf-8")

    def lower_bound(self, s: str) -> int:
        """First index whose string is >= ``s``, in a table sorted by code point (UTF-8 order)."""
        key = s.encode("utf-8")
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.raw(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find_sorted(self, s: str) -> int:
        """Index of ``s`` in a table sorted by code point (UTF-8 byte order), or -1."""
        i = self.lower_bound(s)
        return i if i < len(self) and self.raw(i) == s.encode("utf-8") else -1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StringTable):
            return NotImplemented
        return self._bytes == other._bytes and np.array_equal(self.offsets, other.offsets)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StringTable({len(self)} strings, {len(self._bytes)} bytes)"
