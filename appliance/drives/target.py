"""Open a target (block device or image file) and move bytes to and from it.

The engine only talks to the :class:`Target` protocol, so tests and the
simulator swap in :mod:`appliance.drives.fake` targets (bmaptool's engine takes
file objects for the same reason).

Why the I/O looks like this:

* **Writes** use ``O_DIRECT`` from page-aligned buffers when the target allows
  it: no page-cache copy (CPU on a Pi), no gigabytes of dirty pages that make
  ``close()`` block for minutes on a slow stick. Unaligned pieces and file
  systems without ``O_DIRECT`` (tmpfs) fall back to a buffered descriptor that
  is ``fsync``-ed on a watermark, as bmaptool does.
* **Read-back** never trusts the page cache: ``O_DIRECT`` reads, or, where that
  is impossible, ``fsync`` + ``BLKFLSBUF`` (block devices) +
  ``posix_fadvise(DONTNEED)`` before a buffered read.
* **Never grown**: image files are opened without ``O_CREAT``/``O_TRUNC`` and
  every access is checked against the capacity fixed at open time.
* Block devices are opened ``O_EXCL`` (Linux then refuses mounts and other
  exclusive openers) and only after :func:`appliance.drives.safety.check_block_device`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from appliance.drives import safety
from appliance.drives.errors import DriveError, DriveIOError, DriveRefused, TooSmall, translate

#: Alignment for O_DIRECT offsets, lengths and buffers (covers 512 and 4096 sectors).
ALIGN = 4096
BLKROGET = 0x125E
BLKFLSBUF = 0x1261
BLKGETSIZE64 = 0x80081272
#: Buffered bytes written before an fsync (bmaptool's watermark idea).
FSYNC_WATERMARK = 8 * 1024 * 1024

ByteData = bytes | bytearray | memoryview | mmap.mmap


def aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned, zero-filled buffer usable for ``O_DIRECT`` (rounded up to :data:`ALIGN`)."""
    return mmap.mmap(-1, max(ALIGN, -(-size // ALIGN) * ALIGN))


@runtime_checkable
class Target(Protocol):
    """What the engine needs from a drive. Every method raises :class:`DriveError`."""

    path: str  # for messages; never a serial number
    capacity: int  # bytes, fixed for the life of the object
    is_block_device: bool

    def write_protected(self) -> bool:
        """True if the drive refuses writes (BLKROGET or equivalent)."""

    def pwrite(self, offset: int, data: ByteData) -> None:
        """Write all of ``data`` at ``offset`` (within the capacity)."""

    def read_direct(self, offset: int, buf: memoryview) -> None:
        """Fill ``buf`` with bytes from ``offset`` as stored on the drive, not the page cache."""

    def flush(self) -> None:
        """Make every write so far durable on the drive (fsync)."""

    def close(self) -> None:
        """Release the drive. Idempotent."""


class DeviceTarget:
    """A block device or a regular file opened for loading (see the module docstring)."""

    def __init__(self, path: str, fd_direct: int | None, fd_buffered: int, capacity: int,
                 *, is_block_device: bool) -> None:  # fmt: skip
        self.path = path
        self.capacity = capacity
        self.is_block_device = is_block_device
        self._fd_direct = fd_direct
        self._fd = fd_buffered
        self._dirty = 0
        self._closed = False

    @property
    def direct(self) -> bool:
        """Whether ``O_DIRECT`` is in use (False on tmpfs and similar)."""
        return self._fd_direct is not None

    def __repr__(self) -> str:
        return f"<DeviceTarget {self.path} {self.capacity} bytes direct={self.direct}>"

    # -- checks --------------------------------------------------------------
    def _check_range(self, offset: int, length: int, action: str) -> None:
        if offset < 0 or offset + length > self.capacity:
            raise DriveIOError(
                self.path,
                f"{action} of {length} bytes would pass the end ({self.capacity} bytes)",
                offset=offset,
            )

    def write_protected(self) -> bool:
        if self.is_block_device:
            try:
                value = fcntl.ioctl(self._fd, BLKROGET, struct.pack("i", 0))
            except OSError as exc:
                raise translate(exc, self.path, "asking for write protection", None) from exc
            return bool(struct.unpack("i", value)[0])
        return not os.access(self.path, os.W_OK)

    # -- writes --------------------------------------------------------------
    def pwrite(self, offset: int, data: ByteData) -> None:
        view = memoryview(data).cast("B")
        self._check_range(offset, len(view), "write")
        if (
            self._fd_direct is not None
            and offset % ALIGN == 0
            and len(view) % ALIGN == 0
            and isinstance(view.obj, mmap.mmap)
        ):
            try:
                self._write_all(self._fd_direct, offset, view)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise translate(exc, self.path, "writing", offset) from exc
                # The file system refused this direct write: use the buffered path.
        try:
            self._write_all(self._fd, offset, view)
        except OSError as exc:
            raise translate(exc, self.path, "writing", offset) from exc
        self._dirty += len(view)
        if self._dirty >= FSYNC_WATERMARK:
            self.flush()

    @staticmethod
    def _write_all(fd: int, offset: int, view: memoryview) -> None:
        done = 0
        while done < len(view):
            n = os.pwritev(fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(errno.EIO, "short write")
            done += n

    def flush(self) -> None:
        try:
            os.fsync(self._fd)
            if self._fd_direct is not None:
                os.fsync(self._fd_direct)
        except OSError as exc:
            raise translate(exc, self.path, "flushing", None) from exc
        self._dirty = 0

    # -- reads ---------------------------------------------------------------
    def read_direct(self, offset: int, buf: memoryview) -> None:
        length = len(buf)
        self._check_range(offset, length, "read")
        if self._fd_direct is not None:
            try:
                self._read_direct(offset, buf)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise translate(exc, self.path, "reading back", offset) from exc
        self._read_uncached(offset, buf)

    def _read_direct(self, offset: int, buf: memoryview) -> None:
        assert self._fd_direct is not None
        length = len(buf)
        start = offset - offset % ALIGN
        end = min(-(-(offset + length) // ALIGN) * ALIGN, -(-self.capacity // ALIGN) * ALIGN)
        aligned = isinstance(buf.obj, mmap.mmap) and start == offset and end == offset + length
        tmp = None if aligned else aligned_buffer(end - start)
        view = buf if tmp is None else memoryview(tmp)[: end - start]
        try:
            done = 0
            while done < len(view):
                n = os.preadv(self._fd_direct, [view[done:]], start + done)
                if n <= 0:
                    break
                done += n
            if start + done < offset + length:
                raise OSError(errno.EIO, "short read")
            if tmp is not None:
                buf[:] = view[offset - start : offset - start + length]
        finally:
            del tmp

    def _read_uncached(self, offset: int, buf: memoryview) -> None:
        try:
            if self._dirty:
                self.flush()
            if self.is_block_device:
                fcntl.ioctl(self._fd, BLKFLSBUF, 0)
            os.posix_fadvise(self._fd, offset, len(buf), os.POSIX_FADV_DONTNEED)
            done = 0
            while done < len(buf):
                n = os.preadv(self._fd, [buf[done:]], offset + done)
                if n <= 0:
                    raise OSError(errno.EIO, "short read")
                done += n
        except OSError as exc:
            raise translate(exc, self.path, "reading back", offset) from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._fd_direct, self._fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> DeviceTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def block_device_size(fd: int) -> int:
    """Capacity in bytes of an open block device (``BLKGETSIZE64``)."""
    value = fcntl.ioctl(fd, BLKGETSIZE64, struct.pack("Q", 0))
    return int(struct.unpack("Q", value)[0])


def open_target(path: str | Path, *, protect: Sequence[Path] = ()) -> DeviceTarget:
    """Open ``path`` for loading after the safety checks.

    ``protect`` lists folders (the content) whose disk must never be a target.
    A regular file must already exist; its size is the capacity. A block
    device must pass :func:`safety.check_block_device` and is opened ``O_EXCL``.
    """
    name = str(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise DriveRefused(name, f"cannot use target: {exc.strerror or exc}") from exc
    if stat.S_ISBLK(st.st_mode):
        safety.check_block_device(name, protect)
        flags = os.O_RDWR | os.O_EXCL | os.O_CLOEXEC
        try:
            bfd = os.open(name, flags | os.O_DIRECT)
        except OSError as exc:
            raise translate(exc, name, "opening", None) from exc
        try:
            fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
            capacity = block_device_size(fd)
        except OSError as exc:
            os.close(bfd)
            raise translate(exc, name, "opening", None) from exc
        return DeviceTarget(name, bfd, fd, capacity, is_block_device=True)
    if not stat.S_ISREG(st.st_mode):
        raise DriveRefused(name, "not a block device or a regular image file")
    safety.check_regular_file(name, protect)
    if st.st_size <= 0:
        raise TooSmall(name, "image file is empty (its size is the capacity; create it first)")
    try:
        fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise translate(exc, name, "opening", None) from exc
    fd_direct: int | None
    try:
        fd_direct = os.open(name, os.O_RDWR | os.O_CLOEXEC | os.O_DIRECT)
    except OSError:
        fd_direct = None  # e.g. tmpfs: fall back to fsync + fadvise(DONTNEED)
    return DeviceTarget(name, fd_direct, fd, st.st_size, is_block_device=False)


__all__ = [
    "ALIGN",
    "DeviceTarget",
    "DriveError",
    "Target",
    "aligned_buffer",
    "block_device_size",
    "open_target",
]
