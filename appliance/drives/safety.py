"""Refuse targets that must never be written: "when unsure, don't".

A block device is refused when it is a partition (we only load whole disks),
when it or any of its partitions is mounted (``/proc/self/mountinfo``), used as
swap, held by device-mapper/RAID (``holders``), or when it is the disk under
``/`` or under a protected folder (the content SSD). Disks are found through
``/sys/dev/block/MAJ:MIN``, following partitions to their disk and
device-mapper volumes to their slaves, so LVM or LUKS on the system disk is
recognised too. These checks come before ``O_EXCL``, which the kernel adds on
top (it refuses a device that is mounted or claimed).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from appliance.drives.errors import DriveRefused

SYS_BLOCK = Path("/sys/dev/block")
MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")


def _devno(text: str) -> tuple[int, int]:
    major, minor = text.strip().split(":")
    return int(major), int(minor)


def _sysdir(dev: tuple[int, int]) -> Path | None:
    path = SYS_BLOCK / f"{dev[0]}:{dev[1]}"
    return path.resolve() if path.exists() else None


def base_disks(dev: tuple[int, int], _depth: int = 0) -> set[tuple[int, int]]:
    """Whole disks under block device ``dev`` (partition → disk, dm → slaves)."""
    sysdir = _sysdir(dev)
    if sysdir is None or _depth > 8:
        return set()
    if (sysdir / "partition").exists():
        return base_disks(_devno((sysdir.parent / "dev").read_text()), _depth + 1)
    slaves = sysdir / "slaves"
    found: set[tuple[int, int]] = set()
    if slaves.is_dir():
        for slave in slaves.iterdir():
            try:
                found |= base_disks(_devno((slave / "dev").read_text()), _depth + 1)
            except OSError:
                continue
    return found or {dev}


def _partitions(sysdir: Path) -> list[Path]:
    return [p for p in sysdir.iterdir() if (p / "partition").exists()]


def _mounts() -> Iterable[tuple[tuple[int, int], str, str]]:
    """(device number, mount point, source) for every mount."""
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
            yield _devno(fields[2]), fields[4], fields[sep + 2]
        except (ValueError, IndexError):
            continue


def _devices_of_path(path: Path) -> set[tuple[int, int]]:
    """Block devices that hold ``path`` (by st_dev, and by mount source for btrfs/overlay)."""
    found: set[tuple[int, int]] = set()
    try:
        st = os.stat(path)
    except OSError:
        return found
    found.add((os.major(st.st_dev), os.minor(st.st_dev)))
    # Anonymous device numbers (btrfs, overlay): fall back to the mount's source device.
    real = str(path.resolve())
    best = ""
    source = ""
    for _dev, mountpoint, src in _mounts():
        if (real == mountpoint or real.startswith(mountpoint.rstrip("/") + "/")) and len(
            mountpoint
        ) >= len(best):
            best, source = mountpoint, src
    if source.startswith("/dev/"):
        try:
            sst = os.stat(source)
            found.add((os.major(sst.st_rdev), os.minor(sst.st_rdev)))
        except OSError:
            pass
    return found


#: Where read-only-root set-ups mount the system's own root below the overlay
#: (raspi-config's overlay file system and overlayroot; dracut and live systems).
SYSTEM_LOWER_ROOTS = ("/media/root-ro", "/media/root-rw", "/run/rootfsbase")


def overlay_dirs_in(mountinfo: str, points: Collection[str] = ("/",)) -> list[str]:
    """lowerdir/upperdir directories of the overlays mounted at ``points`` in a mountinfo text."""
    found: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
            point, fstype, options = fields[4], fields[sep + 1], fields[sep + 3]
        except (ValueError, IndexError):
            continue
        if fstype != "overlay" or point.replace("\\040", " ") not in points:
            continue
        for option in options.split(","):
            key, _, value = option.partition("=")
            if key in ("lowerdir", "upperdir") and value:
                found += [d.replace("\\040", " ") for d in value.split(":") if d.startswith("/")]
    return found


def _overlay_root_dirs() -> list[str]:
    """lowerdir/upperdir directories of an overlay mounted at ``/`` (none otherwise)."""
    return overlay_dirs_in(MOUNTINFO.read_text())


def system_disks(extra: Sequence[Path] = ()) -> set[tuple[int, int]]:
    """Disks holding ``/`` and any of ``extra`` (which must never be targets).

    On an overlay root, ``/`` has an anonymous device number: the disks
    holding its lower and upper directories are the system's.
    """
    disks: set[tuple[int, int]] = set()
    paths = [Path("/"), Path("/boot"), Path("/boot/firmware"), *map(Path, SYSTEM_LOWER_ROOTS)]
    for path in (*paths, *map(Path, _overlay_root_dirs()), *extra):
        for dev in _devices_of_path(path):
            disks |= base_disks(dev)
    return disks


def check_block_device(path: str, protect: Sequence[Path] = ()) -> None:
    """Raise :class:`DriveRefused` unless ``path`` is a whole, unused, non-system disk."""
    st = os.stat(path)
    dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    sysdir = _sysdir(dev)
    if sysdir is None:
        raise DriveRefused(path, "refused: not found in /sys/dev/block")
    if (sysdir / "partition").exists():
        raise DriveRefused(path, "refused: is a partition (give the whole disk, e.g. /dev/sdb)")
    names = {sysdir.name}
    devs = {dev}
    for part in _partitions(sysdir):
        names.add(part.name)
        devs.add(_devno((part / "dev").read_text()))
    for mdev, mountpoint, source in _mounts():
        if mdev in devs or (source.startswith("/dev/") and Path(source).name in names):
            raise DriveRefused(path, f"refused: mounted at {mountpoint}")
    if SWAPS.exists():
        for line in SWAPS.read_text().splitlines()[1:]:
            swap = line.split()[0] if line.split() else ""
            if Path(swap).name in names:
                raise DriveRefused(path, f"refused: used as swap ({swap})")
    for part in [sysdir, *_partitions(sysdir)]:
        holders = part / "holders"
        if holders.is_dir() and any(holders.iterdir()):
            held = ", ".join(sorted(h.name for h in holders.iterdir()))
            raise DriveRefused(path, f"refused: in use by {held}")
    for folder in protect:
        if dev in {d for x in _devices_of_path(Path(folder)) for d in base_disks(x)}:
            raise DriveRefused(path, f"refused: holds the content folder {folder}")
    if dev in system_disks():
        raise DriveRefused(path, "refused: is the system disk")


def check_regular_file(path: str, protect: Sequence[Path] = ()) -> None:
    """Refuse an image file that lies inside a protected folder (it would be content)."""
    real = Path(path).resolve()
    for folder in protect:
        root = Path(folder).resolve()
        if real == root or root in real.parents:
            raise DriveRefused(path, f"refused: inside the content folder {folder}")
