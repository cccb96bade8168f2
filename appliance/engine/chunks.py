"""Cut a plan's extents into fixed, aligned chunks: the unit of write, hash and verify.

Chunks sit on a grid of ``chunk_size`` (1 MiB by default) from offset 0, so
every write except a capacity's odd tail is aligned for ``O_DIRECT``. Each
chunk lists its pieces: ``(device offset, length, source, position in source,
role)``; the position is the byte index into a literal or the file offset of
a content file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from appliance.fat32.plan import Extent, FileRange, Literal, Source, Zeros


class Piece(NamedTuple):
    offset: int
    length: int
    source: Source
    position: int
    role: str


class Chunk(NamedTuple):
    offset: int
    length: int
    pieces: list[Piece]

    @property
    def zeros_only(self) -> bool:
        return all(isinstance(p.source, Zeros) for p in self.pieces)


class PlanError(ValueError):
    """The plan's extents are not contiguous from 0 to the capacity."""


def chunks(extents: Iterable[Extent], capacity: int, chunk_size: int) -> Iterator[Chunk]:
    """Every chunk of the target, in ascending order, checking the plan as it goes."""
    expected = 0
    start = 0
    pieces: list[Piece] = []
    for ext in extents:
        if ext.offset != expected or ext.length < 0:
            raise PlanError(
                f"plan extent at {ext.offset} does not follow the previous end {expected}"
            )
        expected = ext.end
        if ext.end > capacity:
            raise PlanError(f"plan extent at {ext.offset} passes the capacity {capacity}")
        src = ext.source
        base = src.offset if isinstance(src, FileRange) else 0
        if isinstance(src, Literal) and len(src.data) != ext.length:
            raise PlanError(
                f"literal extent at {ext.offset} has {len(src.data)} bytes, not {ext.length}"
            )
        off = ext.offset
        while off < ext.end:
            cstart = off - off % chunk_size
            if cstart != start:
                if pieces:
                    yield Chunk(start, _span(pieces), pieces)
                    pieces = []
                start = cstart
            n = min(ext.end, cstart + chunk_size) - off
            pieces.append(Piece(off, n, src, base + off - ext.offset, ext.role))
            off += n
            if off == cstart + chunk_size:
                yield Chunk(start, chunk_size, pieces)
                pieces = []
                start = off
    if pieces:
        yield Chunk(start, _span(pieces), pieces)
    if expected != capacity:
        raise PlanError(f"plan ends at {expected}, not at the capacity {capacity}")


def _span(pieces: list[Piece]) -> int:
    return pieces[-1].offset + pieces[-1].length - pieces[0].offset
