"""Independent readers for FAT32 images: fsck.fat, mtools and 7-Zip.

Tests judge our images with these tools, never with our own reader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PARTITION_OFFSET = 1024 * 1024
ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
SEVEN_ZIP = shutil.which("7zz") or shutil.which("7z")


def partition_file(image: Path, out: Path) -> Path:
    """Copy the partition (from 1 MiB) out of ``image``, keeping holes sparse."""
    with open(image, "rb") as src, open(out, "wb") as dst:
        size = os.fstat(src.fileno()).st_size - PARTITION_OFFSET
        dst.truncate(size)
        pos = PARTITION_OFFSET
        end = PARTITION_OFFSET + size
        while pos < end:
            try:
                data_at = os.lseek(src.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            hole_at = os.lseek(src.fileno(), data_at, os.SEEK_HOLE)
            src.seek(data_at)
            remaining = hole_at - data_at
            dst.seek(data_at - PARTITION_OFFSET)
            while remaining:
                chunk = src.read(min(remaining, 8 << 20))
                dst.write(chunk)
                remaining -= len(chunk)
            pos = hole_at
    return out


def fsck(image: Path, tmp: Path) -> str:
    """Run ``fsck.fat -n`` on the image's partition; fail the test on any complaint."""
    part = partition_file(image, tmp / "partition.img")
    try:
        result = subprocess.run(
            ["fsck.fat", "-n", "-V", str(part)], capture_output=True, text=True, env=ENV
        )
    finally:
        part.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    lowered = result.stdout.lower()
    for word in ("differ", "invalid", "bad", "free cluster summary wrong", "contains"):
        assert word not in lowered, result.stdout
    return result.stdout


def mcopy_extract(image: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    subprocess.run(
        ["mcopy", "-s", "-n", "-m", "-i", f"{image}@@1M", "::/", str(out) + "/"],
        check=True,
        capture_output=True,
        env=ENV,
    )
    return out


def sevenzip_extract(image: Path, out: Path) -> Path:
    if SEVEN_ZIP is None:
        pytest.skip("7-Zip not installed")
    out.mkdir(parents=True)
    subprocess.run(
        [SEVEN_ZIP, "x", "-y", f"-o{out}", str(image)], check=True, capture_output=True, env=ENV
    )
    return out


def sevenzip_list(image: Path) -> str:
    """``7z l -slt``: every entry with its times and attributes."""
    if SEVEN_ZIP is None:
        pytest.skip("7-Zip not installed")
    return subprocess.run(
        [SEVEN_ZIP, "l", "-slt", str(image)], check=True, capture_output=True, text=True, env=ENV
    ).stdout


def mdir_names(image: Path, path: str = "::/") -> list[str]:
    """Long names mtools lists in one directory."""
    result = subprocess.run(
        ["mdir", "-b", "-i", f"{image}@@1M", path],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    return [line.rstrip("/").rsplit("/", 1)[-1] for line in result.stdout.splitlines() if line]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (None for a directory) for a whole tree."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d)] = None
        for f in filenames:
            out[str(rel / f)] = (Path(dirpath) / f).read_bytes()
    return out


def assert_readers_agree(
    image: Path, source: Path, tmp: Path, expected: dict | None = None
) -> None:
    """fsck passes and mtools and 7-Zip both extract exactly ``source``."""
    want = expected if expected is not None else snapshot(source)
    tmp.mkdir(parents=True, exist_ok=True)
    fsck(image, tmp)
    got = snapshot(mcopy_extract(image, tmp / "mtools"))
    assert got == want
    got7 = snapshot(sevenzip_extract(image, tmp / "7z"))
    assert got7 == want
    shutil.rmtree(tmp / "mtools")
    shutil.rmtree(tmp / "7z")
