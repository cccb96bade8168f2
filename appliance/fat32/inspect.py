"""Reading an image back the way a FAT32 reader does (for ``flashstation inspect``).

An independent, minimal reader: partition table, boot sector, FAT chains,
directories with long names. It trusts nothing it reads (bounds and loops
are checked) because ``inspect`` may be pointed at any image. The test suite
checks it against mtools, never the other way round.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from appliance.fat32.plan import SECTOR, LayoutError
from appliance.units import format_size

_FAT_BLOCK = 64 * 1024


class NotAnImage(LayoutError):
    """The file is not a drive image this reader understands."""


@dataclass(frozen=True)
class Partition:
    index: int
    bootable: bool
    type: int
    start: int  # bytes
    size: int  # bytes


@dataclass(frozen=True)
class Entry:
    path: tuple[str, ...]
    is_dir: bool
    size: int
    short_name: str
    first_cluster: int


@dataclass
class ImageInfo:
    size: int
    partitions: list[Partition]
    oem_name: str = ""
    label: str | None = None
    serial: int = 0
    cluster_size: int = 0
    clusters: int = 0
    free_clusters: int = 0
    fsinfo_free: int = 0
    volume_offset: int | None = None  # where the FAT32 volume starts (bytes)
    entries: list[Entry] = field(default_factory=list)


class _Volume:
    def __init__(self, f: BinaryIO, offset: int) -> None:
        self.f = f
        self.offset = offset
        boot = self.read(0, SECTOR)
        if boot[510:512] != b"\x55\xaa":
            raise NotAnImage("partition has no boot sector signature")
        (bps, spc, reserved, nfats) = struct.unpack_from("<HBHB", boot, 11)
        total16 = struct.unpack_from("<H", boot, 19)[0]
        total32 = struct.unpack_from("<I", boot, 32)[0]
        fatsz = struct.unpack_from("<I", boot, 36)[0]
        if bps != SECTOR or spc == 0 or nfats == 0 or fatsz == 0 or total16 != 0:
            raise NotAnImage("not a FAT32 boot sector with 512-byte sectors")
        self.boot = boot
        self.spc = spc
        self.cluster_size = spc * SECTOR
        self.fat_offset = reserved * SECTOR
        self.data_offset = (reserved + nfats * fatsz) * SECTOR
        self.clusters = (total32 - reserved - nfats * fatsz) // spc
        self.root = struct.unpack_from("<I", boot, 44)[0]
        self.fsinfo_sector = struct.unpack_from("<H", boot, 48)[0]
        self._blocks: dict[int, bytes] = {}

    def read(self, pos: int, length: int) -> bytes:
        self.f.seek(self.offset + pos)
        data = self.f.read(length)
        if len(data) != length:
            raise NotAnImage("image ends inside the filesystem")
        return data

    def fat(self, cluster: int) -> int:
        pos = cluster * 4
        block = pos // _FAT_BLOCK
        data = self._blocks.get(block)
        if data is None:
            if len(self._blocks) > 64:
                self._blocks.clear()
            data = self.read(self.fat_offset + block * _FAT_BLOCK, _FAT_BLOCK)
            self._blocks[block] = data
        return struct.unpack_from("<I", data, pos % _FAT_BLOCK)[0] & 0x0FFFFFFF

    def chain(self, first: int) -> Iterator[int]:
        cluster = first
        seen = 0
        while 2 <= cluster < self.clusters + 2:
            yield cluster
            seen += 1
            if seen > self.clusters:
                raise NotAnImage(f"cluster chain from {first} loops")
            cluster = self.fat(cluster)

    def cluster_data(self, cluster: int) -> bytes:
        return self.read(self.data_offset + (cluster - 2) * self.cluster_size, self.cluster_size)

    def count_free(self) -> int:
        """Free clusters: entries whose low 28 bits are zero (the top 4 are reserved)."""
        free = 0
        step = 1024 * 1024 // 4
        for start in range(2, self.clusters + 2, step):
            end = min(start + step, self.clusters + 2)
            entries = array("I", self.read(self.fat_offset + start * 4, (end - start) * 4))
            if sys.byteorder != "little":  # pragma: no cover
                entries.byteswap()
            free += sum(entries.count(high << 28) for high in range(16))
        return free

    def directory(self, first: int) -> Iterator[tuple[str, bytes, int, int, int]]:
        """(long or short name, 11-byte short name, attributes, cluster, size)."""
        parts: dict[int, str] = {}
        check = -1
        for cluster in self.chain(first):
            data = self.cluster_data(cluster)
            for pos in range(0, len(data), 32):
                raw = data[pos : pos + 32]
                if raw[0] == 0:
                    return
                if raw[0] == 0xE5:
                    parts.clear()
                    continue
                attr = raw[11]
                if attr & 0x3F == 0x0F:
                    seq = raw[0] & 0x1F
                    if raw[0] & 0x40:
                        parts.clear()
                        check = raw[13]
                    units = raw[1:11] + raw[14:26] + raw[28:32]
                    parts[seq] = units.decode("utf-16-le", "replace")
                    continue
                short = raw[0:11]
                name = _short_text(short, raw[12])
                if parts and check == _checksum(short):
                    joined = "".join(parts[k] for k in sorted(parts))
                    name = joined.split("\x00", 1)[0]
                parts.clear()
                cluster_no = (struct.unpack_from("<H", raw, 20)[0] << 16) | struct.unpack_from(
                    "<H", raw, 26
                )[0]
                size = struct.unpack_from("<I", raw, 28)[0]
                yield name, short, attr, cluster_no, size


def _checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _short_text(short: bytes, case_flags: int) -> str:
    base = short[0:8].decode("cp437").rstrip(" ")
    ext = short[8:11].decode("cp437").rstrip(" ")
    if short[0] == 0x05:
        base = "\u03c3" + base[1:]
    if case_flags & 0x08:
        base = base.lower()
    if case_flags & 0x10:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def _volume_offset(sector0: bytes, partitions: list[Partition]) -> int | None:
    """The first FAT32 partition's start, 0 for a volume without partition table."""
    fat = [p for p in partitions if p.type in (0x0B, 0x0C)]
    if fat:
        return fat[0].start
    if sector0[0] in (0xEB, 0xE9) and sector0[82:90] == b"FAT32   ":
        return 0  # a "superfloppy": the filesystem starts at sector 0
    return None


def inspect_image(path: Path) -> ImageInfo:
    """Read the partition table and the FAT32 filesystem of an image file."""
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise NotAnImage(f"{path}: cannot be opened ({exc.strerror})") from exc
    with f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        mbr = f.read(SECTOR)
        if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
            raise NotAnImage(f"{path}: no partition table (sector 0 has no 55 AA signature)")
        partitions = []
        for i in range(4):
            raw = mbr[446 + 16 * i : 462 + 16 * i]
            start, count = struct.unpack_from("<II", raw, 8)
            if raw[4] and count:
                partitions.append(
                    Partition(i + 1, raw[0] == 0x80, raw[4], start * SECTOR, count * SECTOR)
                )
        info = ImageInfo(size, partitions)
        offset = _volume_offset(mbr, partitions)
        if offset is None:
            return info
        info.volume_offset = offset
        vol = _Volume(f, offset)
        info.oem_name = vol.boot[3:11].decode("latin-1")
        info.serial = struct.unpack_from("<I", vol.boot, 67)[0]
        info.cluster_size = vol.cluster_size
        info.clusters = vol.clusters
        fsinfo = vol.read(vol.fsinfo_sector * SECTOR, SECTOR)
        info.fsinfo_free = struct.unpack_from("<I", fsinfo, 488)[0]
        info.free_clusters = vol.count_free()

        def walk(first: int, rel: tuple[str, ...], depth: int) -> None:
            if depth > 130:  # a 255-unit path holds at most 128 levels
                raise NotAnImage("directories nest deeper than 130 levels (a loop?)")
            for name, short, attr, cluster, fsize in vol.directory(first):
                if attr & 0x08:
                    if not rel:
                        info.label = short.decode("cp437").rstrip(" ")
                    continue
                if name in (".", ".."):
                    continue
                is_dir = bool(attr & 0x10)
                entry_path = (*rel, name)
                info.entries.append(
                    Entry(entry_path, is_dir, fsize, _short_text(short, 0), cluster)
                )
                if is_dir:
                    walk(cluster, entry_path, depth + 1)

        walk(vol.root, (), 0)
        return info


def read_file(path: Path, entry: Entry) -> bytes:
    """The contents of ``entry`` read through the FAT (for small files and tests)."""
    offset = inspect_image(path).volume_offset
    if offset is None:
        raise NotAnImage(f"{path}: no FAT32 volume")
    with open(path, "rb") as f:
        vol = _Volume(f, offset)
        out = bytearray()
        for cluster in vol.chain(entry.first_cluster):
            out += vol.cluster_data(cluster)
            if len(out) >= entry.size:
                break
        return bytes(out[: entry.size])


_TYPES = {0x0B: "FAT32 (CHS)", 0x0C: "FAT32 (LBA)", 0x07: "NTFS/exFAT", 0x83: "Linux"}


def render(info: ImageInfo) -> str:
    """The text ``flashstation inspect`` prints."""
    lines = [f"image: {format_size(info.size)} ({info.size} bytes)", "partitions:"]
    if not info.partitions and info.volume_offset != 0:
        lines.append("  (none)")
    for p in info.partitions:
        kind = _TYPES.get(p.type, "unknown")
        boot = " bootable" if p.bootable else ""
        lines.append(
            f"  {p.index}: type 0x{p.type:02X} {kind}{boot}, starts at {p.start} "
            f"({p.start // 1024} KiB), {format_size(p.size)} ({p.size} bytes)"
        )
    if info.volume_offset == 0:
        lines.append("  (none: the FAT32 volume starts at sector 0)")
    if not info.cluster_size:
        lines.append("no FAT32 partition")
        return "\n".join(lines)
    serial = f"{info.serial >> 16:04X}-{info.serial & 0xFFFF:04X}"
    lines += [
        f"filesystem: FAT32, OEM name {info.oem_name!r}, label "
        + (repr(info.label) if info.label else "(none)")
        + f", serial {serial}",
        f"clusters: {info.clusters} of {info.cluster_size} bytes, "
        f"{info.free_clusters} free ({format_size(info.free_clusters * info.cluster_size)})"
        + ("" if info.fsinfo_free == info.free_clusters else f" [FSInfo says {info.fsinfo_free}]"),
        "files:",
    ]
    files = 0
    total = 0
    for e in info.entries:
        indent = "  " * len(e.path)
        if e.is_dir:
            lines.append(f"{indent}{e.path[-1]}/")
        else:
            files += 1
            total += e.size
            lines.append(f"{indent}{e.path[-1]}  {e.size} bytes")
    lines.append(f"{files} files, {format_size(total)} ({total} bytes)")
    return "\n".join(lines)
