"""Facts from a fake /sys and /proc: sizes, mounts, holders, the system's own disks."""

from __future__ import annotations

from pathlib import Path

from hotplug_helpers import fixture

from appliance.hotplug.classify import Classifier, Context, Verdict
from appliance.hotplug.sysinfo import disk_facts, from_properties, mounted_devnums, system_disks

MOUNTINFO = """\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
23 22 179:1 / /boot/firmware rw,relatime shared:2 - vfat /dev/mmcblk0p1 rw
30 22 8:17 / /media/pi/STICK\\040ONE rw,nosuid shared:9 - vfat /dev/sdb1 rw
"""


def fake_tree(root: Path) -> tuple[Path, Path]:
    sys_root, proc = root / "sys", root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(MOUNTINFO)
    (proc / "swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n")
    devices = sys_root / "devices"
    disks = {
        "mmcblk0": ("179:0", 31116288, "0", {"mmcblk0p1": "179:1", "mmcblk0p2": "179:2"}),
        "sda": ("8:0", 31277232, "1", {"sda1": "8:1"}),
        "sdb": ("8:16", 15679488, "1", {"sdb1": "8:17"}),
        "sdc": ("8:32", 62521344, "1", {}),
    }
    for name, (devnum, sectors, removable, parts) in disks.items():
        disk = devices / name
        (disk / "holders").mkdir(parents=True)
        (disk / "dev").write_text(devnum + "\n")
        (disk / "size").write_text(f"{sectors}\n")
        (disk / "removable").write_text(removable + "\n")
        links = [(name, disk, devnum)]
        for part, part_devnum in parts.items():
            (disk / part / "holders").mkdir(parents=True)
            (disk / part / "partition").write_text("1\n")
            (disk / part / "dev").write_text(part_devnum + "\n")
            links.append((part, disk / part, part_devnum))
        for link_name, target, number in links:
            for folder, entry in (("class/block", link_name), ("dev/block", number)):
                (sys_root / folder).mkdir(parents=True, exist_ok=True)
                (sys_root / folder / entry).symlink_to(target)
    (devices / "sdc" / "holders" / "dm-0").mkdir()  # LVM on the whole disk
    return sys_root, proc


def test_mounts_sizes_and_holders(tmp_path: Path) -> None:
    sys_root, proc = fake_tree(tmp_path)
    mounts = mounted_devnums(proc)
    assert mounts["179:2"] == ["/"] and mounts["8:17"] == ["/media/pi/STICK ONE"]
    assert disk_facts("sdb", sys_root, mounts) == {
        "size": 15679488 * 512,
        "removable": True,
        "mounted": True,  # through its partition
        "holders": False,
    }
    sda = disk_facts("sda", sys_root, mounts)
    assert (sda["mounted"], sda["holders"], sda["size"]) == (False, False, 31277232 * 512)
    assert disk_facts("sdc", sys_root, mounts)["holders"] is True
    assert disk_facts("nope", sys_root, mounts)["size"] is None


def test_system_disks_come_from_root_and_boot_mounts(tmp_path: Path) -> None:
    sys_root, proc = fake_tree(tmp_path)
    assert system_disks(sys_root, mounted_devnums(proc)) == {"/dev/mmcblk0"}


def test_live_facts_feed_the_classifier(tmp_path: Path) -> None:
    sys_root, proc = fake_tree(tmp_path)
    mounts = mounted_devnums(proc)
    stick = dict(fixture("kingston-dt101ii-stick.udev"))  # /dev/sdb, mounted here
    free = dict(stick, DEVNAME="/dev/sda", DEVPATH=stick["DEVPATH"].replace("sdb", "sda"))
    lvm = dict(stick, DEVNAME="/dev/sdc", DEVPATH=stick["DEVPATH"].replace("sdb", "sdc"))
    classify = Classifier(
        Context(system_devices=frozenset(system_disks(sys_root, mounts)))
    ).classify
    assert classify(from_properties(stick, sys_root, mounts)).verdict == Verdict.SYSTEM
    assert classify(from_properties(free, sys_root, mounts)).verdict == Verdict.TARGET
    assert classify(from_properties(lvm, sys_root, mounts)).rule == "mounted"
    pi_sd = fixture("pi3-sd-mmcblk0.udev")
    decision = classify(from_properties(pi_sd, sys_root, mounts))
    assert (decision.verdict, decision.rule) == (Verdict.SYSTEM, "system_device")


# A Pi booted from a USB SSD (sda) with raspi-config's overlay file system: / is an
# overlay with an anonymous device number, the real root is below it at /media/root-ro
# and /boot/firmware is not mounted; a donor stick (sdb) is mounted elsewhere.
OVERLAY_MOUNTINFO = (
    "21 1 0:25 / / rw,noatime shared:1 - overlay overlayroot rw,lowerdir=/media/root-ro,"
    "upperdir=/media/root-rw/overlay,workdir=/media/root-rw/overlay-workdir\n"
    """\
22 21 8:1 / /media/root-ro ro,noatime shared:2 - ext4 /dev/sda1 ro
23 21 0:26 / /media/root-rw rw,relatime shared:3 - tmpfs tmpfs-root rw
30 21 8:17 / /media/stick rw,nosuid shared:9 - vfat /dev/sdb1 rw
"""
)

# The same idea with an unusual layout: the lower root is a folder inside a mount.
NESTED_MOUNTINFO = (
    "21 1 0:25 / / rw - overlay overlay rw,lowerdir=/run/medium/live/root:/run/medium/live/extra,"
    "upperdir=/run/cow/upper,workdir=/run/cow/work\n"
    """\
22 21 8:1 / /run/medium ro - ext4 /dev/sda1 ro
30 21 8:17 / /media/stick rw,nosuid shared:9 - vfat /dev/sdb1 rw
"""
)


def test_system_disk_below_an_overlay_root(tmp_path: Path) -> None:
    from appliance.hotplug.sysinfo import overlay_dirs

    sys_root, proc = fake_tree(tmp_path)
    for text, lowers in (
        (OVERLAY_MOUNTINFO, ["/media/root-ro", "/media/root-rw/overlay"]),
        (NESTED_MOUNTINFO, ["/run/medium/live/root", "/run/medium/live/extra", "/run/cow/upper"]),
    ):
        (proc / "self" / "mountinfo").write_text(text)
        mounts = mounted_devnums(proc)
        assert overlay_dirs(proc) == lowers
        assert system_disks(sys_root, mounts, overlay_dirs(proc)) == {"/dev/sda"}
    # Without the overlay's directories only the well-known lower mount point is
    # found; with neither, the disk under the overlay would be missed.
    (proc / "self" / "mountinfo").write_text(OVERLAY_MOUNTINFO)
    assert system_disks(sys_root, mounted_devnums(proc)) == {"/dev/sda"}
    (proc / "self" / "mountinfo").write_text(NESTED_MOUNTINFO)
    assert system_disks(sys_root, mounted_devnums(proc)) == set()
