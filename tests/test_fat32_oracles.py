"""The oracles themselves notice broken images (so passing them means something)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.fat32_oracles import assert_readers_agree, fsck
from tests.test_fat32_images import build, put

MiB = 1024 * 1024


def patch(image: Path, offset: int, data: bytes) -> None:
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_fsck_catches_wrong_free_count(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "a.txt", b"x" * 2000)
    image = build(src, tmp_path / "a.img")
    fsck(image, tmp_path)
    patch(image, MiB + 512 + 488, struct.pack("<I", 12345))
    with pytest.raises(AssertionError):
        fsck(image, tmp_path)


def test_fsck_catches_a_broken_chain(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "a.txt", b"x" * 2000)
    image = build(src, tmp_path / "a.img")
    with open(image, "rb") as f:
        f.seek(MiB + 14)
        reserved = struct.unpack("<H", f.read(2))[0]
    # cluster 2 is the root; a.txt starts at 3: cut its chain short in FAT 1 only
    patch(image, MiB + reserved * 512 + 3 * 4, struct.pack("<I", 0x0FFFFFFF))
    with pytest.raises(AssertionError):
        fsck(image, tmp_path)


def test_extraction_catches_a_wrong_long_name_checksum(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "긴 이름.txt", b"hello")
    image = build(src, tmp_path / "a.img")
    assert_readers_agree(image, src, tmp_path / "ok")
    with open(image, "rb") as f:
        f.seek(MiB + 13)
        spc = f.read(1)[0]
        f.seek(MiB + 14)
        reserved = struct.unpack("<H", f.read(2))[0]
        f.seek(MiB + 36)
        fat = struct.unpack("<I", f.read(4))[0]
    root = MiB + (reserved + 2 * fat) * 512
    assert spc == 1
    patch(image, root + 13, b"\x00")  # checksum byte of the first long-name entry
    with pytest.raises(AssertionError):
        assert_readers_agree(image, src, tmp_path / "broken")
