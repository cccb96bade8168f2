"""Facts about live block devices that udev properties do not carry.

Size, mounts, holders and which disks the system itself runs from are read
from ``/sys`` and ``/proc`` only: nothing here opens a device node, so
listing devices is safe on any machine. Paths are parameters so tests run
against a fake tree.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from appliance.drives.safety import SYSTEM_LOWER_ROOTS, overlay_dirs_in
from appliance.hotplug.device import DeviceInfo, Filesystem

SECTOR = 512
# Mount points whose disks are the station's own. With a read-only root the
# system disk is mounted below an overlay: raspi-config's overlay file system
# and Ubuntu's overlayroot put the lower root at /media/root-ro, dracut and
# live systems at /run/rootfsbase; any other overlay's lowerdir/upperdir is
# read from the overlay mount itself (:func:`overlay_dirs`).
SYSTEM_MOUNTS = (
    "/",
    "/boot",
    "/boot/firmware",
    "/usr",
    "/var",
    *SYSTEM_LOWER_ROOTS,
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def mounted_devnums(proc: str | Path = "/proc") -> dict[str, list[str]]:
    """``major:minor`` of every mounted block device -> its mount points (swap too)."""
    found: dict[str, list[str]] = {}
    text = _read(Path(proc) / "self" / "mountinfo") or ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            found.setdefault(fields[2], []).append(fields[4].replace("\\040", " "))
    swaps = _read(Path(proc) / "swaps") or ""
    for line in swaps.splitlines()[1:]:
        source = line.split()[0] if line.split() else ""
        try:
            st = os.stat(source)
        except OSError:
            continue
        if st.st_rdev:
            found.setdefault(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", []).append("[swap]")
    return found


def overlay_dirs(proc: str | Path = "/proc") -> list[str]:
    """Directories under an overlay mounted at a system mount point (lower and upper dirs).

    On an overlay root, ``/`` has an anonymous device number: the disks the
    system runs from are the ones holding these directories.
    """
    return overlay_dirs_in(_read(Path(proc) / "self" / "mountinfo") or "", SYSTEM_MOUNTS)


def _holding_mount(path: str, mounts: Mapping[str, list[str]]) -> str | None:
    """Device number of the mount that holds ``path`` (longest mount point prefix)."""
    best, best_dev = "", None
    for devnum, points in mounts.items():
        for point in points:
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, best_dev = point, devnum
    return best_dev


def _disk_dirs(name: str, sys_root: Path) -> list[Path]:
    """The disk's sysfs directory and those of its partitions."""
    base = sys_root / "class" / "block" / name
    dirs = [base]
    with contextlib.suppress(OSError):
        dirs += [p for p in base.iterdir() if (p / "partition").exists()]
    return dirs


def disk_facts(
    name: str, sys_root: str | Path = "/sys", mounts: Mapping[str, list[str]] | None = None
) -> dict[str, object]:
    """Size (bytes), removable, mounted and holders of disk ``name`` (``sda``)."""
    root = Path(sys_root)
    mounts = mounted_devnums() if mounts is None else mounts
    base = root / "class" / "block" / name
    sectors = _read(base / "size")
    removable = _read(base / "removable")
    mounted = False
    holders = False
    for d in _disk_dirs(name, root):
        if (_read(d / "dev") or "") in mounts:
            mounted = True
        with contextlib.suppress(OSError):
            holders = holders or any((d / "holders").iterdir())
    return {
        "size": int(sectors) * SECTOR if sectors and sectors.isdigit() else None,
        "removable": None if removable is None else removable == "1",
        "mounted": mounted,
        "holders": holders,
    }


def disk_of(devnum: str, sys_root: str | Path = "/sys") -> str | None:
    """Whole-disk name (``mmcblk0``) of a block device number (``179:2``)."""
    link = Path(sys_root) / "dev" / "block" / devnum
    try:
        real = link.resolve(strict=True)
    except OSError:
        return None
    if (real / "partition").exists():
        return real.parent.name
    return real.name


def system_disks(
    sys_root: str | Path = "/sys",
    mounts: Mapping[str, list[str]] | None = None,
    overlays: list[str] | None = None,
) -> set[str]:
    """Device nodes of the disks holding /, /boot and friends (below an overlay root too).

    ``overlays``: the overlay directories of :func:`overlay_dirs` (read from
    ``/proc`` when ``mounts`` is not given either).
    """
    if mounts is None:
        mounts = mounted_devnums()
        overlays = overlay_dirs() if overlays is None else overlays
    devnums = {devnum for devnum, points in mounts.items() if set(points) & set(SYSTEM_MOUNTS)}
    for directory in overlays or ():
        holder = _holding_mount(directory, mounts)
        if holder is not None:
            devnums.add(holder)
    disks = set()
    for devnum in devnums:
        disk = disk_of(devnum, sys_root)
        if disk:
            disks.add(f"/dev/{disk}")
    return disks


def partition_filesystems(device: Any) -> tuple[Filesystem, ...]:
    """What udev probed on a pyudev disk's partitions (``ID_FS_UUID``/``ID_FS_LABEL``).

    Read from the udev database only: nothing is opened or mounted. Right
    after a disk appears udev may not have probed its partitions yet; their
    own events follow and :class:`~.state.HotplugState` folds them in.
    """
    if device.device_type != "disk":
        return ()
    found = []
    for child in device.children:
        if child.device_type != "partition":
            continue
        props = child.properties
        uuid, label = str(props.get("ID_FS_UUID", "")), str(props.get("ID_FS_LABEL", ""))
        if uuid or label:
            found.append(Filesystem(str(child.device_node or ""), uuid, label))
    return tuple(found)


def live_devices(
    sys_root: str | Path = "/sys", mounts: Mapping[str, list[str]] | None = None
) -> Iterator[DeviceInfo]:
    """Every block device on this machine with its udev properties (read-only)."""
    import pyudev

    mounts = mounted_devnums() if mounts is None else mounts
    context = pyudev.Context()
    for device in context.list_devices(subsystem="block"):
        props = {str(k): str(v) for k, v in device.properties.items()}
        yield from_properties(props, sys_root, mounts, partition_filesystems(device))


def from_properties(
    props: Mapping[str, str],
    sys_root: str | Path = "/sys",
    mounts: Mapping[str, list[str]] | None = None,
    partitions: tuple[Filesystem, ...] = (),
) -> DeviceInfo:
    """A :class:`DeviceInfo` for live properties, with sysfs facts filled in."""
    name = (
        props.get("DEVNAME", "").rsplit("/", 1)[-1] or props.get("DEVPATH", "").rsplit("/", 1)[-1]
    )
    facts = disk_facts(name, sys_root, mounts)
    size = facts["size"]
    removable = facts["removable"]
    return DeviceInfo(
        properties=dict(props),
        size=size if isinstance(size, int) else None,
        mounted=bool(facts["mounted"]),
        holders=bool(facts["holders"]),
        removable=removable if isinstance(removable, bool) else None,
        partitions=partitions,
    )


def enable_media_polling(name: str, sys_root: str | Path = "/sys", msecs: int = 2000) -> bool:
    """Let the kernel notice cards going in and out of a removable disk (a card reader).

    Without a poller (udisks, or systemd rules setting the kernel's
    ``block.events_dfl_poll_msecs``) the kernel never re-reads a reader's
    slot, so no ``change`` event comes when a card is inserted. This sets
    ``events_poll_msecs`` on removable disks that follow the system default
    (-1, which is "off" unless that default is set). Returns True when set.
    """
    base = Path(sys_root) / "class" / "block" / name
    if _read(base / "removable") != "1" or _read(base / "events_poll_msecs") != "-1":
        return False
    try:
        (base / "events_poll_msecs").write_text(str(msecs))
    except OSError:
        return False
    return True
