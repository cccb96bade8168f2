"""Our fixed boot-sector fields against ``mkfs.fat -F 32`` for the same partition.

mkfs.fat rounds the volume down to a whole number of 63-sector tracks, so the
partitions compared here are whole tracks long (see docs/fat32.md for that and
every field that differs on purpose).
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from appliance.fat32 import ContentTree, LayoutOptions, Literal, compile_plan

#: (name, struct format, offset) of every boot-sector field we keep equal to mkfs.fat.
SAME_FIELDS = [
    ("bytes per sector", "<H", 11),
    ("sectors per cluster", "<B", 13),
    ("reserved sectors", "<H", 14),
    ("number of FATs", "<B", 16),
    ("root entries (FAT12/16)", "<H", 17),
    ("total sectors 16", "<H", 19),
    ("media", "<B", 21),
    ("FAT size 16", "<H", 22),
    ("sectors per track", "<H", 24),
    ("heads", "<H", 26),
    ("hidden sectors", "<I", 28),
    ("total sectors 32", "<I", 32),
    ("FAT size 32", "<I", 36),
    ("extended flags", "<H", 40),
    ("version", "<H", 42),
    ("root cluster", "<I", 44),
    ("FSInfo sector", "<H", 48),
    ("backup boot sector", "<H", 50),
    ("drive number", "<B", 64),
    ("reserved (NT flags)", "<B", 65),
    ("boot signature", "<B", 66),
    ("volume label", "11s", 71),
    ("filesystem type", "8s", 82),
    ("signature 55AA", "<H", 510),
]
#: Fields that differ on purpose (docs/fat32.md explains each).
DIFFERENT_FIELDS = [("OEM name", "8s", 3), ("volume serial", "<I", 67)]

SECTORS_PER_TRACK = 63
PARTITIONS = [
    129024,  # a 64 MiB stick: 512-byte clusters
    532476,  # last size with 512-byte clusters (260 MiB)
    532539,  # first with 4 KiB clusters
    2095065,  # ~1 GiB
    16777215,  # last with 4 KiB (8 GiB)
    16777278,  # first with 8 KiB
    33587190,  # 16 KiB clusters
    67583943,  # 32 KiB clusters, reserved sectors rounded to 64
]


def field(sector: bytes, fmt: str, offset: int) -> object:
    return struct.unpack_from(fmt, sector, offset)[0]


def mkfs_volume(tmp: Path, sectors: int) -> tuple[bytes, bytes, bytes]:
    part = tmp / "mkfs.img"
    with open(part, "wb") as f:
        f.truncate(sectors * 512)
    subprocess.run(
        ["mkfs.fat", "-F", "32", "-g", "255/63", "-h", "2048", str(part)],
        check=True,
        capture_output=True,
    )
    with open(part, "rb") as f:
        boot = f.read(512)
        fsinfo = f.read(512)
        reserved = struct.unpack_from("<H", boot, 14)[0]
        f.seek(reserved * 512)
        fat_head = f.read(12)
    part.unlink()
    return boot, fsinfo, fat_head


def our_volume(sectors: int) -> tuple[bytes, bytes, bytes]:
    plan = compile_plan(ContentTree(()), (sectors + 2048) * 512, LayoutOptions())
    extents = list(plan.extents())
    boot = next(e for e in extents if e.role == "boot")
    fat = next(e for e in extents if e.role == "fat")
    assert isinstance(boot.source, Literal) and isinstance(fat.source, Literal)
    return boot.source.data[:512], boot.source.data[512:1024], fat.source.data[:12]


@pytest.mark.parametrize("sectors", PARTITIONS)
def test_fixed_fields_match_mkfs_fat(tmp_path: Path, sectors: int) -> None:
    assert sectors % SECTORS_PER_TRACK == 0
    their_boot, their_fsinfo, their_fat = mkfs_volume(tmp_path, sectors)
    our_boot, our_fsinfo, our_fat = our_volume(sectors)
    for name, fmt, offset in SAME_FIELDS:
        assert field(our_boot, fmt, offset) == field(their_boot, fmt, offset), name
    assert field(our_boot, "8s", 3) == b"MSDOS5.0"
    assert field(their_boot, "8s", 3) == b"mkfs.fat"
    # FSInfo: signatures, free count and next-free hint agree on an empty volume
    for fmt, offset in [("<I", 0), ("<I", 484), ("<I", 488), ("<I", 492), ("<I", 508)]:
        assert field(our_fsinfo, fmt, offset) == field(their_fsinfo, fmt, offset), offset
    # FAT[0] and FAT[1] agree; FAT[2] (the root's end of chain) is 0x0FFFFFFF for us
    assert our_fat[:8] == their_fat[:8]
    assert field(our_fat, "<I", 8) == 0x0FFFFFFF
    assert field(their_fat, "<I", 8) & 0x0FFFFFFF >= 0x0FFFFFF8


def test_no_mkfs_fingerprint_in_boot_sector() -> None:
    boot, _, _ = our_volume(129024)
    assert b"mkfs" not in boot and b"bootable" not in boot
    assert boot[90:510].rstrip(b"\x00") == bytes([0xCD, 0x18, 0xF4, 0xEB, 0xFD])
