"""Mounting the content SSD read-only, behind a small interface with a real and a fake side.

The real :class:`CommandMounter` runs ``blkid``/``mount``/``umount`` (station
only: Linux). Options: always ``ro,nosuid,nodev,noexec`` and, by default,
``nosymfollow`` (Linux >= 5.10) so the kernel itself refuses links on the
SSD; ext4 adds ``noload`` because a read-only ext4 mount would otherwise
replay a dirty journal, i.e. write to the SSD. Only exFAT, ext4 and FAT32
are accepted: the station never hands the kernel a filesystem it did not
expect. ``image-build/udev/99-flashstation-no-automount.rules`` keeps udisks
and desktop automounters away from USB storage, so only this code mounts it.

:class:`DirectoryMounter` is the fake: a "device" is a plain directory, for
tests and the simulator; :meth:`DirectoryMounter.remove` simulates yanking it.
"""

from __future__ import annotations

import contextlib
import errno
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from appliance.content.errors import ContentRemoved, MountError

BASE_OPTIONS = ("ro", "nosuid", "nodev", "noexec")
FS_OPTIONS: dict[str, tuple[str, ...]] = {
    "exfat": ("iocharset=utf8",),
    "vfat": ("utf8", "shortname=mixed"),
    "ext4": ("noload",),
}
#: errno values that mean "the device went away" rather than "the data is bad".
REMOVED_ERRNOS = frozenset({errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOENT, errno.EIO})

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class Mounter(Protocol):
    """Mount a content device read-only; return where its files are."""

    def mount(self, device: str) -> Path: ...

    def unmount(self, mountpoint: Path) -> None: ...


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)


def mount_options(fstype: str, *, nosymfollow: bool = True) -> str:
    if fstype not in FS_OPTIONS:
        raise MountError(
            f"content SSD has a {fstype or 'unknown'} filesystem; use exFAT, ext4 or FAT32"
        )
    extra = ("nosymfollow",) if nosymfollow else ()
    return ",".join((*BASE_OPTIONS, *extra, *FS_OPTIONS[fstype]))


class CommandMounter:
    """Mounts with the ``mount`` command under ``base`` (one directory per device)."""

    def __init__(
        self,
        base: Path = Path("/run/flashstation/content"),
        *,
        run: Runner = _run,
        nosymfollow: bool = True,
    ) -> None:
        self.base = Path(base)
        self._run = run
        self.nosymfollow = nosymfollow

    def fstype(self, device: str) -> str:
        out = self._run(["blkid", "-o", "value", "-s", "TYPE", "--", device])
        if out.returncode not in (0, 2):
            raise MountError(f"{device}: cannot read the filesystem type ({out.stderr.strip()})")
        return out.stdout.strip()

    def mount(self, device: str) -> Path:
        if not device.startswith("/dev/"):
            raise MountError(f"{device}: not a device path")
        fstype = self.fstype(device)
        options = mount_options(fstype, nosymfollow=self.nosymfollow)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", device.removeprefix("/dev/"))
        mountpoint = self.base / name
        try:
            mountpoint.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MountError(f"{mountpoint}: cannot create mount point ({exc.strerror})") from exc
        cmd = ["mount", "-t", fstype, "-o", options, "--", device, str(mountpoint)]
        out = self._run(cmd)
        if out.returncode != 0:
            raise MountError(f"{device}: mount failed: {out.stderr.strip() or out.returncode}")
        return mountpoint

    def unmount(self, mountpoint: Path) -> None:
        out = self._run(["umount", "--", str(mountpoint)])
        if out.returncode != 0:
            # The SSD was pulled, or a reader is still open: detach lazily so the
            # mount point cannot keep a dead device busy.
            lazy = self._run(["umount", "-l", "--", str(mountpoint)])
            if lazy.returncode != 0:
                raise MountError(f"{mountpoint}: unmount failed: {lazy.stderr.strip()}")
        with contextlib.suppress(OSError):
            Path(mountpoint).rmdir()


class DirectoryMounter:
    """Fake mounter: ``devices`` maps a device name to a directory holding the content."""

    def __init__(self, devices: dict[str, Path] | None = None) -> None:
        self.devices: dict[str, Path] = dict(devices or {})
        self.mounted: dict[Path, str] = {}

    def add(self, device: str, directory: Path) -> None:
        self.devices[device] = Path(directory)

    def remove(self, device: str) -> None:
        """Simulate pulling the SSD: its directory can no longer be reached."""
        self.devices.pop(device, None)

    def mount(self, device: str) -> Path:
        directory = self.devices.get(device)
        if directory is None or not directory.is_dir():
            raise MountError(f"{device}: no such content device")
        self.mounted[directory] = device
        return directory

    def unmount(self, mountpoint: Path) -> None:
        self.mounted.pop(Path(mountpoint), None)


def as_removed(exc: BaseException, root: Path) -> ContentRemoved | None:
    """A :class:`ContentRemoved` when ``exc`` (raised reading ``root``) means the SSD is gone."""
    if isinstance(exc, ContentRemoved):
        return exc
    if isinstance(exc, OSError) and exc.errno in REMOVED_ERRNOS:
        try:
            gone = not Path(root).exists() or not any(True for _ in Path(root).iterdir())
        except OSError:
            gone = True
        if gone or exc.errno in (errno.ENODEV, errno.ENXIO):
            return ContentRemoved("content SSD removed")
    return None
