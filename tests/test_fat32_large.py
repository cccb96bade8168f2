"""A 256 GB target: make-image's peak memory, sparseness, and readers on the result.

The image is sparse (holes cost nothing), so a 256 GB file takes only the
bytes actually written; it is deleted at the end of each test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fat32_oracles import assert_readers_agree, fsck

GB = 1000**3
RSS_LIMIT_KIB = 64 * 1024


def make_tree(root: Path, dirs: int, per_dir: int, big: int = 0) -> None:
    for d in range(dirs):
        folder = root / f"시리즈 {d:03d}"
        folder.mkdir(parents=True)
        for i in range(per_dir):
            (folder / f"에피소드 이름이 긴 파일 {i:04d}.txt").write_bytes(os.urandom(i % 700))
    if big:
        with open(root / "영화.mp4", "wb") as f:
            for _ in range(big // (1 << 20)):
                f.write(os.urandom(1 << 20))


def run_make_image(src: Path, image: Path, capacity: str) -> int:
    """Run make-image in a fresh interpreter; return its peak RSS in KiB.

    VmHWM, not ru_maxrss: the latter carries over the (large) peak of the
    pytest process that forked the child.
    """
    code = (
        "import sys\n"
        "from appliance.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(hwm.split()[1], file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "make-image",
            "--content",
            str(src),
            "--capacity",
            capacity,
            str(image),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stderr.strip().splitlines()[-1].split()[-1])


def test_256_gb_image_small_memory_and_sparse(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, dirs=20, per_dir=250, big=8 * 1024 * 1024)
    image = tmp_path / "big.img"
    try:
        rss = run_make_image(src, image, "256GB")
        assert rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
        st = image.stat()
        assert st.st_size == 256 * GB
        assert st.st_blocks * 512 < 64 * 1024 * 1024
        fsck(image, tmp_path)
    finally:
        image.unlink(missing_ok=True)


@pytest.mark.slow
def test_256_gb_image_large_tree_extracts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, dirs=100, per_dir=300, big=200 * 1024 * 1024)
    image = tmp_path / "big.img"
    try:
        rss = run_make_image(src, image, "256GB")
        assert rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
        assert_readers_agree(image, src, tmp_path / "check")
    finally:
        image.unlink(missing_ok=True)
