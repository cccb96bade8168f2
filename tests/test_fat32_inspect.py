"""Our reader (``flashstation inspect``) checked against mtools and mkfs.fat-made images."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from appliance.fat32 import ContentTree, LayoutOptions, compile_plan
from appliance.fat32.inspect import NotAnImage, inspect_image, read_file, render
from tests.fat32_oracles import ENV
from tests.test_fat32_images import build, put

MiB = 1024 * 1024


def mdir_paths(image: Path) -> set[str]:
    out = subprocess.run(
        ["mdir", "-/", "-b", "-i", f"{image}@@1M", "::/"],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    ).stdout
    return {line.removeprefix("::/").rstrip("/") for line in out.splitlines() if line.strip()}


def mdir_summary(image: Path) -> str:
    return subprocess.run(
        ["mdir", "-i", f"{image}@@1M", "::/"], check=True, capture_output=True, text=True, env=ENV
    ).stdout


def sample_tree(src: Path) -> None:
    put(src, "영화/프렌즈 시즌1/에피소드 01.mp4", os.urandom(9000))
    put(src, "영화/빈 파일.txt")
    put(src, "README.TXT", b"upper")
    put(src, "a long name.text", b"x" * 513)
    (src / "empty").mkdir()


def test_inspect_matches_mtools_on_our_image(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sample_tree(src)
    image = build(src, tmp_path / "a.img", label="DEMO", volume_serial=0xABCD1234)
    info = inspect_image(image)
    assert {"/".join(e.path) for e in info.entries} == mdir_paths(image)
    summary = mdir_summary(image)
    assert "Volume Serial Number is ABCD-1234" in summary
    assert info.serial == 0xABCD1234 and info.label == "DEMO"
    free = int(re.search(r"([\d ]+) bytes free", summary).group(1).replace(" ", ""))  # type: ignore[union-attr]
    assert info.free_clusters * info.cluster_size == free
    assert info.fsinfo_free == info.free_clusters
    for e in info.entries:
        if not e.is_dir:
            assert read_file(image, e) == (src / "/".join(e.path)).read_bytes()
    text = render(info)
    assert "label 'DEMO'" in text and "serial ABCD-1234" in text


def test_inspect_reads_an_image_made_by_mkfs_and_mcopy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sample_tree(src)
    image = tmp_path / "mkfs.img"
    capacity = 64 * MiB
    plan = compile_plan(ContentTree(()), capacity, LayoutOptions())
    with open(image, "wb") as f:
        f.truncate(capacity)
        f.write(plan.mbr)
    subprocess.run(
        ["mkfs.fat", "-F", "32", "--offset", "2048", "-n", "OTHER", str(image), str(63 * 1024)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["mcopy", "-s", "-i", f"{image}@@1M", *map(str, src.iterdir()), "::/"],
        check=True,
        capture_output=True,
        env=ENV,
    )
    info = inspect_image(image)
    assert {"/".join(e.path) for e in info.entries} == mdir_paths(image)
    assert info.label == "OTHER"
    for e in info.entries:
        if not e.is_dir:
            assert read_file(image, e) == (src / "/".join(e.path)).read_bytes()


def test_inspect_refuses_non_images(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(NotAnImage, match="no partition table"):
        inspect_image(junk)
    with pytest.raises(NotAnImage, match="cannot be opened"):
        inspect_image(tmp_path / "missing.img")


def test_inspect_reads_a_volume_without_partition_table(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sample_tree(src)
    image = build(src, tmp_path / "a.img")
    from appliance.fat32.image import extract_partition

    volume = extract_partition(image, MiB, 63 * MiB, tmp_path / "volume.img")
    info = inspect_image(volume)
    assert info.partitions == [] and info.volume_offset == 0
    assert {"/".join(e.path) for e in info.entries} == mdir_paths(image)
    assert "starts at sector 0" in render(info)


def test_deep_nesting_is_read(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "/".join(["d"] * 100) + "/f.txt", b"deep")
    image = build(src, tmp_path / "deep.img")
    info = inspect_image(image)
    assert max(len(e.path) for e in info.entries) == 101
