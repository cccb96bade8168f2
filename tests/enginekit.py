"""Small hand-made plans for engine tests (the FAT32 compiler is tested on its own)."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from appliance.fat32.plan import (
    ContentFile,
    Extent,
    FileRange,
    Literal,
    PlannedFile,
    Zeros,
)

MiB = 1024 * 1024
MARKER = b"DONOR-DATA-MARKER-SECTOR!!"


def mbr_bytes(capacity: int) -> bytes:
    mbr = bytearray(512)
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x0C, b"\0\0\0", 2048, capacity // 512 - 2048)
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


@dataclass
class TinyPlan:
    """MBR, gap, a boot literal, files at 4 KiB clusters, free space, 1 MiB tail."""

    capacity: int
    content: Sequence[tuple[Path, int]]
    partition_offset: int = MiB
    cluster_size: int = 4096
    volume_serial: int = 0x1234
    files: list[PlannedFile] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.partition_size = self.capacity - 2 * MiB
        at = MiB + 8192
        for path, size in self.content:
            self.files.append(PlannedFile(ContentFile((path.name,), path, size), at))
            at += -(-size // 4096) * 4096
        self._data_end = at
        assert at <= self.capacity - MiB, "content does not fit"

    @property
    def mbr(self) -> bytes:
        return mbr_bytes(self.capacity)

    def boot(self) -> bytes:
        data = bytearray(b"BOOT" * 128)
        data[510:512] = b"\x55\xaa"
        return bytes(data)

    def extents(self) -> Iterator[Extent]:
        yield Extent(0, 512, Literal(self.mbr), "mbr")
        yield Extent(512, MiB - 512, Zeros(), "gap")
        yield Extent(MiB, 512, Literal(self.boot()), "boot")
        yield Extent(MiB + 512, 8192 - 512, Zeros(), "boot")
        for index, planned in enumerate(self.files):
            size = planned.file.size
            if not size:
                continue
            yield Extent(
                planned.device_offset, size, FileRange(planned.file.source, 0, index), "data"
            )
            slack = -size % 4096
            if slack:
                yield Extent(planned.device_offset + size, slack, Zeros(), "data")
        end = self.capacity - MiB
        if self._data_end < end:
            yield Extent(self._data_end, end - self._data_end, Zeros(), "free")
        yield Extent(end, MiB, Zeros(), "tail")


def expected_image(plan: TinyPlan) -> bytes:
    """The bytes a target must hold after a full-wipe load (for comparisons)."""
    out = bytearray(plan.capacity)
    for ext in plan.extents():
        src = ext.source
        if isinstance(src, Literal):
            out[ext.offset : ext.end] = src.data
        elif isinstance(src, FileRange):
            with open(src.path, "rb") as f:
                f.seek(src.offset)
                out[ext.offset : ext.end] = f.read(ext.length)
    return bytes(out)


def marker_sectors(path: Path) -> int:
    """How many 512-byte sectors of ``path`` still start with the donor marker."""
    count = 0
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            for i in range(0, len(block), 512):
                if block[i : i + len(MARKER)] == MARKER:
                    count += 1
    return count


def make_content(root: Path, sizes: Sequence[int], seed: int = 1) -> list[tuple[Path, int]]:
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, size in enumerate(sizes):
        p = root / f"file{i:02d}.bin"
        p.write_bytes(rng.randbytes(size))
        out.append((p, size))
    return out


def marker_fill() -> bytes:
    return MARKER + b"\xa5" * (512 - len(MARKER))
