"""Images of edge-case trees, judged by fsck.fat, mtools and 7-Zip."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.fat32 import LayoutOptions, compile_plan, scan_content, write_image
from tests.fat32_oracles import (
    ENV,
    assert_readers_agree,
    mcopy_extract,
    mdir_names,
    sevenzip_list,
)

MiB = 1024 * 1024


def build(content: Path, image: Path, capacity: int = 64 * MiB, **options: object) -> Path:
    tree = scan_content(content)
    plan = compile_plan(tree, capacity, LayoutOptions(**options))  # type: ignore[arg-type]
    write_image(plan, image)
    return image


def put(root: Path, rel: str, data: bytes = b"") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_korean_names_and_nesting(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "영화/프렌즈 시즌1/에피소드 01.mp4", os.urandom(70_000))
    put(src, "영화/프렌즈 시즌1/에피소드 02.mp4", os.urandom(1))
    put(src, "책/세계인권선언 제1조.txt", "모든 인간은 태어날 때부터 자유롭다".encode())
    deep = "/".join(f"단계{i}" for i in range(12))
    put(src, f"{deep}/끝.txt", b"deep")
    (src / "빈 폴더").mkdir()
    image = build(src, tmp_path / "a.img")
    assert_readers_agree(image, src, tmp_path)
    assert "에피소드 01.mp4" in mdir_names(image, "::/영화/프렌즈 시즌1")


@pytest.mark.parametrize("cluster_size", [512, 4096])
def test_cluster_boundaries_and_empty_files(tmp_path: Path, cluster_size: int) -> None:
    src = tmp_path / "src"
    for n in (0, 1, cluster_size - 1, cluster_size, cluster_size + 1, 3 * cluster_size):
        put(src, f"size {n}.bin", os.urandom(n))
    put(src, "empty/zero.txt")
    (src / "empty dir").mkdir()
    capacity = 64 * MiB if cluster_size == 512 else 300 * MiB
    image = build(src, tmp_path / "b.img", capacity)
    assert_readers_agree(image, src, tmp_path)


def test_thirty_names_colliding_in_8_3(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(30):
        put(src, f"Long file name number {i:02d}.text", str(i).encode())
        put(src, f"파일 {i}.txt", str(i).encode())
    put(src, "README.TXT", b"exact 8.3")
    put(src, "readme2.txt", b"lower case 8.3")
    put(src, "a.b.c.d", b"dots")
    put(src, "name with  spaces.mp3", b"spaces")
    # equal but for case is fine in different folders (refused within one: test_fat32_scan)
    put(src, "sub/readme.txt", b"lower")
    put(src, "SUB2/README.TXT", b"upper")
    put(src, "Sub3/ReadMe.Txt", b"mixed")
    image = build(src, tmp_path / "c.img")
    assert_readers_agree(image, src, tmp_path)
    listing = subprocess.run(
        ["mdir", "-i", f"{image}@@1M", "::/"], capture_output=True, text=True, env=ENV
    ).stdout
    shorts = [line[:12] for line in listing.splitlines() if line.endswith(".text")]
    assert shorts[:4] == [f"LONGFI~{n} TEX" for n in range(1, 5)]
    hashed = shorts[4:]
    assert len(hashed) == 26 and len(set(hashed)) == 26
    assert all(re.fullmatch(r"LO[0-9A-F]{4}~\d TEX", s) for s in hashed), hashed


def test_directory_of_2000_entries(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(2000):
        put(src, f"big/에피소드 {i}.txt", f"{i}".encode())
    image = build(src, tmp_path / "d.img")
    assert_readers_agree(image, src, tmp_path)


def test_label_fixed_times_and_plain_attributes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "a/b.txt", b"x")
    put(src, "c.txt", b"y")
    (src / "빈").mkdir()
    for i, path in enumerate([src / "a/b.txt", src / "c.txt", src / "a", src / "빈"]):
        os.utime(path, (1_600_000_000 + i * 86400 * 37, 1_500_000_000 + i * 86400 * 91))
    when = datetime(2021, 3, 4, 5, 6, 8)
    image = build(src, tmp_path / "e.img", label="Films", timestamp=when)
    assert_readers_agree(image, src, tmp_path)
    out = mcopy_extract(image, tmp_path / "x")
    for path in [out / "a/b.txt", out / "c.txt", out / "a", out / "빈"]:
        assert path.stat().st_mtime == when.timestamp()
    text = subprocess.run(
        ["mdir", "-i", f"{image}@@1M", "::/"], capture_output=True, text=True, env=ENV
    ).stdout
    assert "Volume in drive : is FILMS" in text
    listing = sevenzip_list(image)
    fat_part = listing.split("----------", 1)[1]
    stamps = re.findall(r"^(Modified|Created|Accessed) = (.*)$", fat_part, re.M)
    assert len(stamps) == 3 * 4  # a, a/b.txt, c.txt and 빈
    for kind, value in stamps:
        expected = "2021-03-04" if kind == "Accessed" else "2021-03-04 05:06:08"
        assert value.startswith(expected), (kind, value)
    attributes = re.findall(r"^Attributes = (.*)$", fat_part, re.M)
    assert set(attributes) <= {"D", "A"}, attributes


NAME = st.text(
    alphabet=st.sampled_from("abcXYZ019 _-.()가나다라마바사아자차카타파하영화책"),
    min_size=1,
    max_size=20,
).filter(lambda n: n.strip(" .") == n and not n.startswith("."))


@st.composite
def trees(draw: st.DrawFn) -> dict[str, int]:
    files: dict[str, int] = {}
    dirs = [""] + [
        "/".join(draw(st.lists(NAME, min_size=1, max_size=3)))
        for _ in range(draw(st.integers(0, 4)))
    ]
    for _ in range(draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(dirs))
        name = draw(NAME)
        size = draw(st.sampled_from([0, 1, 511, 512, 513, 4096, 9000]))
        files[f"{parent}/{name}".lstrip("/")] = size
    return files


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=trees(), cluster_size=st.sampled_from([None, 1024, 4096]))
def test_random_trees(
    tmp_path_factory: pytest.TempPathFactory, spec: dict[str, int], cluster_size: int | None
) -> None:
    tmp = tmp_path_factory.mktemp("random")
    src = tmp / "src"
    src.mkdir()
    seen: dict[str, str] = {}
    for rel, size in spec.items():
        # FAT folds case: keep only trees a FAT reader can tell apart
        parts = rel.split("/")
        ok = True
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth]).upper()
            if seen.setdefault(key, "/".join(parts[:depth])) != "/".join(parts[:depth]):
                ok = False
        parent_is_file = any((src / "/".join(parts[:d])).is_file() for d in range(1, len(parts)))
        if not ok or parent_is_file or (src / rel).is_dir():
            continue
        put(src, rel, os.urandom(size))
    capacity = 64 * MiB if cluster_size is None else 300 * MiB
    image = build(src, tmp / "r.img", capacity, cluster_size=cluster_size)
    assert_readers_agree(image, src, tmp)


def test_same_tree_same_options_same_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    put(src, "영화/a.mp4", os.urandom(5000))
    put(src, "b.txt", b"b")
    first = build(src, tmp_path / "1.img", volume_serial=7).read_bytes()
    os.utime(src / "b.txt", (1, 1))  # source times never matter
    second = build(src, tmp_path / "2.img", volume_serial=7).read_bytes()
    assert first == second


@pytest.mark.parametrize(
    ("capacity", "cluster_size"),
    [(9 * 1000**3, 8192), (20 * 1000**3, 16384), (40 * 1000**3, 32768)],
)
def test_every_default_cluster_size(tmp_path: Path, capacity: int, cluster_size: int) -> None:
    src = tmp_path / "src"
    put(src, "영화/에피소드 01.mp4", os.urandom(cluster_size * 3 + 1))
    put(src, "영화/빈.txt")
    put(src, "a.txt", os.urandom(cluster_size))
    image = build(src, tmp_path / "big.img", capacity)
    try:
        from appliance.fat32 import inspect_image

        assert inspect_image(image).cluster_size == cluster_size
        assert_readers_agree(image, src, tmp_path)
    finally:
        image.unlink()
