"""The engine and the refusal checks on real block devices: loop devices we create."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.drives import DriveBusy, DriveRefused, open_target, safety
from appliance.drives.fake import make_image
from appliance.engine import Job, LoadOptions, start_batch
from appliance.fat32 import compile_plan, scan_content
from tests.enginekit import MiB, marker_fill, marker_sectors
from tests.fat32_oracles import fsck, mcopy_extract
from tests.test_load_acceptance import same_tree

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]
SAMPLE = Path(__file__).resolve().parent.parent / "appliance" / "data" / "sample"


@contextlib.contextmanager
def loop_device(image: Path, *partscan: str) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    try:
        dev = subprocess.run(
            ["losetup", "-f", "--show", *partscan, str(image)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"losetup failed: {exc}")
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_load_a_loop_device_and_verify_with_mtools(tmp_path: Path) -> None:
    image = make_image(tmp_path / "loop.img", 96 * MiB, fill=marker_fill())
    with loop_device(image) as dev:
        target = open_target(dev, protect=[SAMPLE])
        assert target.is_block_device and target.capacity == 96 * MiB and target.direct
        assert not target.write_protected()
        plan = compile_plan(scan_content(SAMPLE), target.capacity)
        (result,) = start_batch([Job(target, plan)], LoadOptions(), protect=[SAMPLE]).wait(90)
        assert result.ok, result.reason
    assert marker_sectors(image) == 0
    same_tree(SAMPLE, mcopy_extract(image, tmp_path / "out"))
    fsck(image, tmp_path)


def _devno(dev: str) -> tuple[int, int]:
    st = os.stat(dev)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def test_refuses_mounted_swap_content_and_system_disks(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    image = make_image(tmp_path / "m.img", 64 * MiB)
    with loop_device(image) as dev:
        major, minor = _devno(dev)
        mountinfo = tmp_path / "mountinfo"
        mountinfo.write_text(f"36 25 {major}:{minor} / /media/stick rw - vfat {dev} rw\n")
        monkeypatch.setattr(safety, "MOUNTINFO", mountinfo)
        with pytest.raises(DriveRefused, match="mounted at /media/stick"):
            open_target(dev)
        mountinfo.write_text("")
        swaps = tmp_path / "swaps"
        swaps.write_text(f"Filename Type Size Used Priority\n{dev} partition 1 0 -2\n")
        monkeypatch.setattr(safety, "SWAPS", swaps)
        with pytest.raises(DriveRefused, match="swap"):
            open_target(dev)
        swaps.write_text("Filename Type Size Used Priority\n")
        content = tmp_path / "content"
        content.mkdir()
        real = safety._devices_of_path
        monkeypatch.setattr(
            safety,
            "_devices_of_path",
            lambda p: {(major, minor)} if Path(p) == content else real(p),
        )
        with pytest.raises(DriveRefused, match="holds the content folder"):
            open_target(dev, protect=[content])
        monkeypatch.setattr(safety, "system_disks", lambda extra=(): {(major, minor)})
        with pytest.raises(DriveRefused, match="is the system disk"):
            open_target(dev)
        with open(image, "rb") as f:
            assert f.read(4096) == bytes(4096)  # nothing was written


def test_system_disk_is_refused_without_opening_it() -> None:
    """The disk under / is in system_disks(); the check never opens a device."""
    disks = safety.system_disks()
    if not disks:
        pytest.skip("root file system is not on a block device here")
    st = os.stat("/")
    root = safety.base_disks((os.major(st.st_dev), os.minor(st.st_dev)))
    if root:  # / is directly on a block device (not overlay): its disk is protected
        assert root <= disks


def test_system_disks_look_below_an_overlay_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With / on an overlay (read-only root), the disks under its dirs are the system's."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "21 1 0:25 / / rw - overlay overlayroot rw,lowerdir=/srv/lower:/srv/more,"
        "upperdir=/srv/upper,workdir=/srv/work\n"
        "22 21 8:1 / /srv ro - ext4 /dev/sda1 ro\n"
        "30 21 0:40 / /media/x rw - overlay overlay rw,lowerdir=/not/root\n"
    )
    monkeypatch.setattr(safety, "MOUNTINFO", mountinfo)
    assert safety._overlay_root_dirs() == ["/srv/lower", "/srv/more", "/srv/upper"]
    asked: list[str] = []

    def devices_of(path: Path) -> set[tuple[int, int]]:
        asked.append(str(path))
        return {(8, 1)} if str(path).startswith("/srv/") else set()

    monkeypatch.setattr(safety, "_devices_of_path", devices_of)
    monkeypatch.setattr(safety, "base_disks", lambda dev: {(dev[0], 0)})
    assert safety.system_disks() == {(8, 0)}
    assert {"/", "/boot/firmware", "/media/root-ro", "/srv/lower", "/srv/upper"} <= set(asked)


def test_refuses_a_partition_and_a_busy_disk(tmp_path: Path) -> None:
    image = make_image(tmp_path / "p.img", 64 * MiB)
    with open(image, "r+b") as f:
        mbr = bytearray(512)
        mbr[446 + 4] = 0x0C
        mbr[446 + 8 : 446 + 16] = struct.pack("<II", 2048, 64 * 2048 - 2048)
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
    with loop_device(image, "-P") as dev:
        name = Path(dev).name
        sys_part = Path(f"/sys/class/block/{name}/{name}p1/dev")
        if sys_part.exists():
            # Containers may lack the /dev node: make our own for the kernel's partition.
            major, minor = (int(x) for x in sys_part.read_text().split(":"))
            node = tmp_path / f"{name}p1"
            os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
            with pytest.raises(DriveRefused, match="is a partition"):
                open_target(node)
        first = open_target(dev)  # O_EXCL: a second exclusive open is refused
        try:
            with pytest.raises(DriveBusy, match="busy"):
                open_target(dev)
        finally:
            first.close()
