"""Fault-injecting targets for tests, the simulator and other areas' tests.

A :class:`FaultyTarget` wraps any :class:`~appliance.drives.target.Target`
(usually an image file opened with :func:`file_target`) and misbehaves the way
donated sticks do, at the engine's I/O boundary::

    from appliance.drives.fake import Faults, FaultyTarget, file_target, make_image

    make_image(path, 256 * MiB)                      # sparse file = a blank stick
    stick = FaultyTarget(file_target(path), Faults(eio_at=100 * MiB))
    fake = wrap_around_target(path, claimed=64 * GB, real=8 * GB)

Faults (combine freely):

* ``eio_at``: any read or write touching that byte fails with EIO;
* ``read_only``: write-protect switch: reports write-protected, writes fail EROFS;
* ``real_capacity``: wrap-around fake: offsets wrap modulo the real size, as
  counterfeit firmware does (use :func:`wrap_around_target`);
* ``flip_on_read_at``: one bit at that offset comes back flipped (bad flash);
* ``vanish_after``: after that many bytes written the drive is gone (ENODEV);
* ``slowdown`` / ``throttle``: each operation takes ``slowdown`` times as long,
  and/or at most ``throttle`` bytes per second (a slow USB2 stick).

Counters (``bytes_written``, ``bytes_read``) let tests check bus accounting.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.drives.errors import translate
from appliance.drives.target import ByteData, DeviceTarget, Target, open_target


@dataclass(frozen=True)
class Faults:
    """What a :class:`FaultyTarget` does wrong (see the module docstring)."""

    eio_at: int | None = None
    read_only: bool = False
    real_capacity: int | None = None
    flip_on_read_at: int | None = None
    vanish_after: int | None = None
    slowdown: float = 1.0
    throttle: float | None = None  # bytes per second


def make_image(path: Path, size: int, fill: bytes | None = None) -> Path:
    """Create an image file of ``size`` bytes: sparse, or every sector ``fill`` repeated."""
    with open(path, "wb") as f:
        if fill is None:
            f.truncate(size)
        else:
            block = (fill * (1024 * 1024 // len(fill) + 1))[: 1024 * 1024]
            left = size
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
    return path


def file_target(path: Path | str) -> DeviceTarget:
    """Open an existing image file as a target (no block-device checks apply)."""
    return open_target(path)


class FaultyTarget:
    """A :class:`Target` that injects :class:`Faults` into another target."""

    def __init__(self, inner: Target, faults: Faults, *, capacity: int | None = None) -> None:
        self.inner = inner
        self.faults = faults
        self.path = inner.path
        self.capacity = capacity if capacity is not None else inner.capacity
        self.is_block_device = inner.is_block_device
        self.bytes_written = 0
        self.bytes_read = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<FaultyTarget {self.path} {self.faults}>"

    def _fail(self, code: int, action: str, offset: int | None) -> None:
        raise translate(OSError(code, os.strerror(code)), self.path, action, offset)

    def _check(self, offset: int, length: int, action: str) -> None:
        f = self.faults
        if f.vanish_after is not None and self.bytes_written >= f.vanish_after:
            self._fail(errno.ENODEV, action, offset)
        if f.eio_at is not None and offset <= f.eio_at < offset + length:
            self._fail(errno.EIO, action, f.eio_at)

    def _pace(self, started: float, length: int) -> None:
        f = self.faults
        took = time.monotonic() - started
        delay = took * (f.slowdown - 1.0)
        if f.throttle:
            delay = max(delay, length / f.throttle - took)
        if delay > 0:
            time.sleep(delay)

    def _pieces(self, offset: int, length: int) -> list[tuple[int, int, int]]:
        """(inner offset, position in buffer, length), wrapping for fake capacities."""
        real = self.faults.real_capacity
        if real is None:
            return [(offset, 0, length)]
        out = []
        pos = 0
        while pos < length:
            at = (offset + pos) % real
            n = min(length - pos, real - at)
            out.append((at, pos, n))
            pos += n
        return out

    def write_protected(self) -> bool:
        return self.faults.read_only or self.inner.write_protected()

    def pwrite(self, offset: int, data: ByteData) -> None:
        started = time.monotonic()
        view = memoryview(data).cast("B")
        if self.faults.read_only:
            self._fail(errno.EROFS, "writing", offset)
        self._check(offset, len(view), "writing")
        if offset < 0 or offset + len(view) > self.capacity:
            self._fail(errno.ENOSPC, "writing", offset)
        for at, pos, n in self._pieces(offset, len(view)):
            self.inner.pwrite(at, view[pos : pos + n])
        with self._lock:
            self.bytes_written += len(view)
        self._pace(started, len(view))

    def read_direct(self, offset: int, buf: memoryview) -> None:
        started = time.monotonic()
        self._check(offset, len(buf), "reading back")
        for at, pos, n in self._pieces(offset, len(buf)):
            self.inner.read_direct(at, buf[pos : pos + n])
        flip = self.faults.flip_on_read_at
        if flip is not None and offset <= flip < offset + len(buf):
            buf[flip - offset] ^= 0x10
        with self._lock:
            self.bytes_read += len(buf)
        self._pace(started, len(buf))

    def flush(self) -> None:
        self._check(0, 0, "flushing")
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def wrap_around_target(path: Path, *, claimed: int, real: int) -> FaultyTarget:
    """A counterfeit stick: claims ``claimed`` bytes, stores ``real`` and wraps around.

    ``path`` is (re)created as a sparse file of ``real`` bytes.
    """
    make_image(path, real)
    return FaultyTarget(file_target(path), Faults(real_capacity=real), capacity=claimed)


__all__ = ["Faults", "FaultyTarget", "file_target", "make_image", "wrap_around_target"]
