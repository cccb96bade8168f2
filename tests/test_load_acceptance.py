"""Acceptance for issue 5: real FAT32 plans, judged by mtools and fsck.fat."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.drives.fake import Faults, FaultyTarget, file_target, make_image, wrap_around_target
from appliance.engine import Job, LoadOptions, start_batch
from appliance.fat32 import compile_plan, scan_content
from tests.enginekit import MiB, make_content, marker_fill, marker_sectors
from tests.fat32_oracles import ENV, fsck, mcopy_extract

pytestmark = pytest.mark.timeout(180)


def same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, cmp.report()
    for name in cmp.common_files:
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    for sub in cmp.common_dirs:
        same_tree(a / sub, b / sub)


@pytest.fixture
def content(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    make_content(root / "films", [5 * MiB + 3, 2 * MiB])
    make_content(root / "books", [100, 4097, 0], seed=2)
    (root / "empty dir").mkdir()
    (root / "읽어 보세요.txt").write_text("안녕하세요\n", encoding="utf-8")
    return root


def flashstation(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=150,
        **kw,  # type: ignore[call-overload]
    )


def test_full_wipe_leaves_no_marker_and_every_stick_extracts_identically(
    tmp_path: Path, content: Path
) -> None:
    targets = [
        make_image(tmp_path / f"stick{i}.img", size, fill=marker_fill())
        for i, size in enumerate([80 * MiB, 96 * MiB + 512, 130 * MiB])
    ]
    args = ["load", "--content", str(content), "--wipe", "full", "--json"]
    for t in targets:
        args += ["--target", str(t)]
    proc = flashstation(*args)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["target"] for r in rows] == [str(t) for t in targets]
    content_size = sum(p.stat().st_size for p in content.rglob("*") if p.is_file())
    for t, row in zip(targets, rows, strict=True):
        assert row["status"] == "ok" and row["reason"] == ""
        assert row["capacity"] == t.stat().st_size
        assert row["bytes_verified"] >= row["capacity"]
        assert set(row["seconds"]) == {"probe", "write", "verify", "commit"}
        assert row["bus_ratio"] == pytest.approx(row["bus_bytes"] / content_size, rel=1e-3)
        assert marker_sectors(t) == 0
        same_tree(content, mcopy_extract(t, tmp_path / f"out-{t.stem}"))
        fsck(t, tmp_path)
    assert "bus" in proc.stderr


def test_quick_wipe_extracts_identically_and_says_donor_data_may_remain(
    tmp_path: Path, content: Path
) -> None:
    t = make_image(tmp_path / "q.img", 200 * MiB, fill=marker_fill())
    proc = flashstation("load", "--content", str(content), "--target", str(t), "--wipe", "quick")
    assert proc.returncode == 0, proc.stderr
    assert "donor data may remain" in proc.stderr
    same_tree(content, mcopy_extract(t, tmp_path / "out"))
    fsck(t, tmp_path)


def test_usage_errors_exit_2(tmp_path: Path, content: Path) -> None:
    t = make_image(tmp_path / "t.img", 80 * MiB)
    missing = flashstation("load", "--content", str(content), "--target", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    twice = flashstation("load", "--content", str(content), "--target", str(t), "--target", str(t))
    assert twice.returncode == 2 and "given twice" in twice.stderr
    nodir = flashstation("load", "--content", str(tmp_path / "x"), "--target", str(t))
    assert nodir.returncode == 2 and "not a folder" in nodir.stderr
    badwipe = flashstation("load", "--content", str(content), "--target", str(t), "--wipe", "no")
    assert badwipe.returncode == 2
    with open(t, "rb") as f:
        assert f.read(4096) == bytes(4096)  # untouched


def test_refused_and_too_small_targets_fail_alone(tmp_path: Path, content: Path) -> None:
    good = make_image(tmp_path / "good.img", 256 * MiB)  # the content now holds oops.img too
    small = make_image(tmp_path / "small.img", 8 * MiB)
    inside = make_image(content / "oops.img", 80 * MiB)
    proc = flashstation(
        "load", "--content", str(content), "--json",
        "--target", str(good), "--target", str(small), "--target", str(inside),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rows = {Path(r["target"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert rows["good.img"]["status"] == "ok"
    assert rows["small.img"]["status"] == "failed" and "smaller than" in rows["small.img"]["reason"]
    assert rows["oops.img"]["status"] == "failed"
    assert "inside the content folder" in rows["oops.img"]["reason"]
    assert inside.read_bytes()[:512] == bytes(512)


def test_mixed_healthy_and_faulty_with_real_plans(tmp_path: Path, content: Path) -> None:
    tree = scan_content(content)
    size = 80 * MiB

    def img(name: str) -> Path:
        return make_image(tmp_path / name, size, fill=marker_fill())

    def plan(capacity: int = size):  # type: ignore[no-untyped-def]
        return compile_plan(tree, capacity)

    faulty = {
        "eio": FaultyTarget(file_target(img("eio.img")), Faults(eio_at=40 * MiB + 7)),
        "ro": FaultyTarget(file_target(img("ro.img")), Faults(read_only=True)),
        "fake": wrap_around_target(tmp_path / "fake.img", claimed=1024 * MiB, real=128 * MiB),
        "flip": FaultyTarget(file_target(img("flip.img")), Faults(flip_on_read_at=3 * MiB + 9)),
        "gone": FaultyTarget(file_target(img("gone.img")), Faults(vanish_after=20 * MiB)),
    }
    jobs = [Job(img("ok1.img"), plan(), name="ok1")]
    jobs += [Job(t, plan(1024 * MiB if n == "fake" else size), name=n) for n, t in faulty.items()]
    jobs.append(
        Job(FaultyTarget(file_target(img("slow.img")), Faults(slowdown=10)), plan(), name="slow")
    )
    results = {r.target: r for r in start_batch(jobs, LoadOptions()).wait(150)}
    assert {n for n, r in results.items() if r.ok} == {"ok1", "slow"}
    expected = {
        "eio": "I/O error",
        "ro": "write-protected",
        "fake": "fake capacity: about 0.1 GB real of 1.1 GB claimed",
        "flip": "verify failed",
        "gone": "drive removed",
    }
    for name, words in expected.items():
        assert results[name].status == "failed"
        assert words in results[name].reason, results[name].reason
    for name in ("ok1", "slow"):
        path = tmp_path / f"{name}.img"
        same_tree(content, mcopy_extract(path, tmp_path / f"out-{name}"))
        fsck(path, tmp_path)
    for name in ("eio", "flip", "gone"):
        assert (tmp_path / f"{name}.img").read_bytes()[510:512] != b"\x55\xaa"


def test_sigkill_mid_write_leaves_no_partition_table(tmp_path: Path, content: Path) -> None:
    donor_mbr = bytearray(marker_fill())
    donor_mbr[510:512] = b"\x55\xaa"
    targets = []
    for i in range(3):
        t = make_image(tmp_path / f"k{i}.img", 1024 * MiB)
        with open(t, "r+b") as f:
            f.write(donor_mbr)
        targets.append(t)
    args = [sys.executable, "-m", "appliance", "load", "--content", str(content)]
    for t in targets:
        args += ["--target", str(t)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 60
        # Mid-write: every target has real blocks well past the probe's few KiB.
        while time.monotonic() < deadline:
            if all(os.stat(t).st_blocks * 512 > 64 * MiB for t in targets):
                break
            assert proc.poll() is None, "finished before it could be killed; use bigger targets"
            time.sleep(0.02)
        else:
            pytest.fail("load never got going")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    for t in targets:
        with open(t, "rb") as f:
            assert f.read(512)[510:512] != b"\x55\xaa", t
