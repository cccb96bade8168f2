"""The fixed on-disk records: MBR, boot sector, FSInfo, directory entries.

Every field value is explained in ``docs/fat32.md``. The aim is a stick that
looks like one formatted by Windows' ``format`` (OEM name ``MSDOS5.0``, media
0xF8, 255 heads / 63 sectors per track, drive 0x80), carrying no tool's
fingerprint and no boot code or message of anyone else's: our boot code is
``INT 18h`` ("not bootable, try the next device") followed by a halt loop.
"""

from __future__ import annotations

import struct
from datetime import datetime

from appliance.fat32.geometry import NUM_FATS, PARTITION_START_SECTOR, Geometry
from appliance.fat32.plan import SECTOR, LayoutError

OEM_NAME = b"MSDOS5.0"
MEDIA = 0xF8
SECTORS_PER_TRACK = 63
HEADS = 255
DRIVE_NUMBER = 0x80
NO_LABEL = b"NO NAME    "
PARTITION_TYPE = 0x0C  # FAT32 with LBA addressing
BOOT_CODE = bytes([0xCD, 0x18, 0xF4, 0xEB, 0xFD])  # int 18h; hlt; jmp back to hlt
EOC = 0x0FFFFFFF  # end of a cluster chain, as Windows writes it
FAT_ID = 0x0FFFFF00 | MEDIA  # FAT[0]
FAT_1 = 0x0FFFFFFF  # FAT[1]: "cleanly unmounted, no I/O errors" bits set

ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_VOLUME = 0x08
BACKUP_BOOT_SECTOR = 6
FSINFO_SECTOR = 1

LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'()-@^_`{}~")


def label_bytes(label: str | None) -> bytes | None:
    """The 11-byte volume label, None for no label, or LayoutError."""
    if label is None or label == "":
        return None
    upper = label.upper()
    if len(upper) > 11 or not set(upper) <= LABEL_CHARS or upper.startswith(" "):
        raise LayoutError(
            f"volume label {label!r} must be 1-11 characters of A-Z, 0-9, space or "
            "!#$%&'()-@^_`{}~ and not start with a space"
        )
    return upper.ljust(11).encode("ascii")


def fat_datetime(when: datetime) -> tuple[int, int, int]:
    """(date, time, tenths) as FAT stores them; LayoutError outside 1980-2107."""
    if not 1980 <= when.year <= 2107:
        raise LayoutError(f"timestamp {when.isoformat()} is outside FAT's 1980-2107 range")
    date = ((when.year - 1980) << 9) | (when.month << 5) | when.day
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    tenths = (when.second % 2) * 100 + when.microsecond // 10000
    return date, time, tenths


def _chs(lba: int) -> bytes:
    """Cylinder/head/sector bytes for an MBR entry (1023/254/63 past the CHS limit)."""
    cylinder, rest = divmod(lba, HEADS * SECTORS_PER_TRACK)
    head, sector = divmod(rest, SECTORS_PER_TRACK)
    if cylinder > 1023:
        cylinder, head, sector = 1023, 254, 62
    return bytes([head, ((sector + 1) & 0x3F) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])


def mbr(geometry: Geometry, disk_signature: int) -> bytes:
    """Sector 0: no boot code, a disk signature and one FAT32 (LBA) partition."""
    sector = bytearray(SECTOR)
    sector[0 : len(BOOT_CODE)] = BOOT_CODE
    struct.pack_into("<I", sector, 440, disk_signature & 0xFFFFFFFF)
    first = PARTITION_START_SECTOR
    last = first + geometry.partition_sectors - 1
    entry = (
        bytes([0x00])
        + _chs(first)
        + bytes([PARTITION_TYPE])
        + _chs(last)
        + struct.pack("<II", first, geometry.partition_sectors)
    )
    sector[446:462] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def boot_sector(geometry: Geometry, serial: int, label: bytes | None) -> bytes:
    """The FAT32 boot sector (also written as the backup at sector 6)."""
    sector = bytearray(SECTOR)
    sector[0:3] = b"\xeb\x58\x90"  # jump over the BPB to the boot code at 0x5A
    sector[3:11] = OEM_NAME
    struct.pack_into(
        "<HBHBHHBHHHII",
        sector,
        11,
        SECTOR,
        geometry.sectors_per_cluster,
        geometry.reserved_sectors,
        NUM_FATS,
        0,  # root entries: 0 on FAT32
        0,  # 16-bit total sectors: 0, see the 32-bit field
        MEDIA,
        0,  # 16-bit FAT size: 0 on FAT32
        SECTORS_PER_TRACK,
        HEADS,
        PARTITION_START_SECTOR,  # hidden sectors: the partition's first LBA
        geometry.partition_sectors,
    )
    struct.pack_into(
        "<IHHIHH",
        sector,
        36,
        geometry.fat_sectors,
        0,  # flags: FATs mirrored
        0,  # version 0.0
        2,  # root directory cluster
        FSINFO_SECTOR,
        BACKUP_BOOT_SECTOR,
    )
    sector[64] = DRIVE_NUMBER
    sector[65] = 0
    sector[66] = 0x29  # extended boot signature: serial, label and type follow
    struct.pack_into("<I", sector, 67, serial & 0xFFFFFFFF)
    sector[71:82] = label or NO_LABEL
    sector[82:90] = b"FAT32   "
    sector[90 : 90 + len(BOOT_CODE)] = BOOT_CODE
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def fsinfo(free_clusters: int, next_free: int) -> bytes:
    sector = bytearray(SECTOR)
    struct.pack_into("<I", sector, 0, 0x41615252)
    struct.pack_into("<III", sector, 484, 0x61417272, free_clusters, next_free)
    struct.pack_into("<I", sector, 508, 0xAA550000)
    return bytes(sector)


def dir_entry(
    short: bytes,
    attr: int,
    cluster: int,
    size: int,
    stamp: tuple[int, int, int],
) -> bytes:
    """One 32-byte short directory entry; every time field gets ``stamp``."""
    date, time, tenths = stamp
    return struct.pack(
        "<11sBBBHHHHHHHI",
        short,
        attr,
        0,  # NT case flags: unused, names that need them get long names
        tenths,
        time,
        date,
        date,  # last access date
        cluster >> 16,
        time,
        date,
        cluster & 0xFFFF,
        size,
    )
