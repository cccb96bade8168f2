"""What a drive image is made of: an ordered list of extents.

A :class:`Plan` describes every byte of a target from offset 0 to its capacity
as contiguous, ascending :class:`Extent` objects. Each extent takes its bytes
from one :data:`Source`: literal bytes computed by the compiler (MBR, boot
sectors, FAT and directory chunks, generated lazily), a byte range of a content
file, or zeros. The engine streams the plan to many drives; ``make-image``
writes it to a sparse file. Neither needs the whole FAT in memory.

The partition table (sector 0, role ``"mbr"``) is the commit record: the
engine zeroes it first and writes it last, after everything else verified.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal as TypingLiteral
from typing import Protocol

from appliance.errors import FlashStationError

SECTOR = 512

#: What an extent is for; the engine's quick wipe and reports use it.
Role = TypingLiteral[
    "mbr",  # sector 0: the partition table, written last
    "gap",  # between the MBR and the partition (1 MiB alignment)
    "boot",  # boot sector, FSInfo, backup boot sector, other reserved sectors
    "fat",  # the file allocation tables
    "dir",  # directory clusters
    "data",  # file contents
    "free",  # free clusters of the filesystem
    "tail",  # after the partition's end
]


@dataclass(frozen=True, slots=True)
class Literal:
    """Bytes computed by the compiler."""

    data: bytes


@dataclass(frozen=True, slots=True)
class FileRange:
    """Bytes ``[offset, offset + extent.length)`` of a content file.

    ``index`` is the file's position in :attr:`Plan.files`; the same content
    tree gives the same order whatever the capacity, so the engine can read
    each file once for drives of different sizes.
    """

    path: Path
    offset: int
    index: int


@dataclass(frozen=True, slots=True)
class Zeros:
    """Zero bytes (never stored: sparse in images, written as a wipe on drives)."""


Source = Literal | FileRange | Zeros


@dataclass(frozen=True, slots=True)
class Extent:
    offset: int
    length: int
    source: Source
    role: Role

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class ContentFile:
    """One regular file of the content, as it will appear on the stick."""

    relpath: tuple[str, ...]  # path components on the stick, e.g. ("영화", "a.mp4")
    source: Path  # where to read it
    size: int


@dataclass(frozen=True, slots=True)
class ContentTree:
    """The content to lay out: files and (possibly empty) directories.

    ``dirs`` lists every directory (as path components) including empty ones;
    parents of files are implied. Order does not matter: the compiler sorts.
    """

    files: tuple[ContentFile, ...]
    dirs: tuple[tuple[str, ...], ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """Where a content file's bytes land on the device (contiguous clusters)."""

    file: ContentFile
    device_offset: int  # first byte on the device; meaningless when size == 0


@dataclass(frozen=True)
class LayoutOptions:
    """Choices that do not depend on the content (see docs/fat32.md)."""

    label: str | None = None  # None: no label, like a freshly formatted stick
    timestamp: datetime = datetime(2020, 1, 1, 0, 0, 0)
    volume_serial: int | None = None  # None: a fresh random serial per plan
    cluster_size: int | None = None  # None: the usual table for the size
    extra: dict[str, object] = field(default_factory=dict)


class Plan(Protocol):
    """A compiled image. Implementations generate literal chunks lazily."""

    capacity: int  # bytes of the target
    partition_offset: int  # bytes
    partition_size: int  # bytes
    cluster_size: int  # bytes
    volume_serial: int
    files: Sequence[PlannedFile]  # in on-device data order

    @property
    def mbr(self) -> bytes:
        """Sector 0 (512 bytes): the partition table, the commit record."""

    def extents(self) -> Iterator[Extent]:
        """Every extent from 0 to ``capacity``, ascending and contiguous.

        Literal extents are at most a few MiB each; the first is the MBR.
        """


class LayoutError(FlashStationError, ValueError):
    """The content cannot be laid out on this target. The message says why in one line."""
