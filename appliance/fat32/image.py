"""Writing a plan to a sparse image file.

Zeros are never written: the file is created at full length, empty, so every
zeros extent stays a hole (a 256 GB image of 1 GB of content takes 1 GB of
disk). File data is copied inside the kernel with ``os.copy_file_range``
(no trip through Python buffers; ``cp`` does the same), falling back to large
buffered copies where the kernel or filesystem cannot. Written bytes are
handed to the kernel's writeback every few MiB instead of piling up in the
page cache until the final flush, so writing the image overlaps reading the
content (the way ``dd oflag=direct`` or bmaptool keep a disk busy). The image is written
under a temporary name, flushed, and renamed when complete, so a failed run
(or a power cut) never leaves something that looks like a finished image.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.errors import FlashStationError
from appliance.fat32.plan import FileRange, LayoutError, Literal, Plan

Progress = Callable[[int, int], None]
_BUFFER = 8 * 1024 * 1024
_READAHEAD_STEP = 2 * 1024 * 1024
_WRITEBACK_STEP = 16 * 1024 * 1024  # measured best of 4, 16 and 64 MiB (bench_fat32.py)


class ContentChanged(LayoutError):
    """A content file changed size between scanning and writing."""


class ImageTargetError(FlashStationError, ValueError):
    """The output of :func:`write_image` is not a (new or existing) regular file."""


def bytes_to_write(plan: Plan) -> int:
    """Bytes that are not zeros (what the progress total counts)."""
    quick = getattr(plan, "bytes_to_write", None)
    if callable(quick):
        return int(quick())
    return sum(e.length for e in plan.extents() if not _is_zeros(e.source))


def _is_zeros(source: object) -> bool:
    return not isinstance(source, Literal | FileRange)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _open_source(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ContentChanged(f"{path}: cannot be read ({exc.strerror})") from exc


def _copy(
    src: int,
    dst: int,
    src_offset: int,
    dst_offset: int,
    length: int,
    name: str,
    advance: Callable[[int, int], None] | None = None,
) -> None:
    """Copy ``length`` bytes; ``advance(n, end)`` after each chunk (``end``: output offset)."""
    use_kernel = True
    while length > 0:
        if use_kernel:
            try:
                done = os.copy_file_range(src, dst, min(length, _BUFFER), src_offset, dst_offset)
            except OSError:
                use_kernel = False
                continue
        else:
            data = os.pread(src, min(length, _BUFFER), src_offset)
            done = os.pwrite(dst, data, dst_offset) if data else 0
        if done == 0:
            raise ContentChanged(f"{name}: file became shorter while the image was written")
        src_offset += done
        dst_offset += done
        length -= done
        if advance is not None:
            advance(done, dst_offset)


class _Pacer(threading.Thread):
    """A helper thread paced by the copy: it waits on ``cond`` until there is work or a stop."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopped = False
        self.cond = threading.Condition()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()


class _Writeback(_Pacer):
    """Starts writeback of what the copy has written, from a thread, a step at a time.

    Left alone, the kernel keeps a whole image's worth of dirty pages in
    memory (its background threshold is a share of RAM) and writes them only
    at the final ``fsync``: copying and writing to disk then happen one after
    the other. ``POSIX_FADV_DONTNEED`` on a written range starts writeback of
    its dirty pages (and lets clean ones go, so a big image does not push the
    content out of the cache). The call blocks while it submits the writes,
    so it runs here, beside the copy, and the disk writes while the copy goes on.
    """

    def __init__(self, fd: int, step: int | None = None) -> None:
        super().__init__("fat32-writeback")
        self.fd = fd
        self.step = step or _WRITEBACK_STEP
        self.written = 0

    def wrote(self, end: int) -> None:
        with self.cond:
            self.written = end
            self.cond.notify()

    def run(self) -> None:
        flushed = 0
        while True:
            with self.cond:
                while not self.stopped and self.written - flushed < self.step:
                    self.cond.wait()
                if self.stopped:
                    return
                end = self.written
            try:
                os.posix_fadvise(self.fd, flushed, end - flushed, os.POSIX_FADV_DONTNEED)
            except OSError:
                return  # only a hint: the final fsync writes what is left
            flushed = end


class _Readahead(_Pacer):
    """Asks the kernel to read content a little ahead of the copy, from a thread.

    Copying file after file leaves the disk idle between requests: small files
    are latency-bound and the next big file starts cold. This thread walks the
    files in data order and issues ``POSIX_FADV_WILLNEED`` for up to ``window``
    bytes beyond what the copy has consumed, so reads overlap the copy (the
    page cache holds the bytes; nothing is read into Python).
    """

    def __init__(self, plan: Plan, window: int = 64 * 1024 * 1024) -> None:
        super().__init__("fat32-readahead")
        self.files = plan.files
        self.window = window
        self.consumed = 0

    def advance(self, nbytes: int) -> None:
        with self.cond:
            self.consumed += nbytes
            self.cond.notify()

    def run(self) -> None:
        issued = 0
        for planned in self.files:
            size = planned.file.size
            if not size:
                continue
            try:
                fd = os.open(planned.file.source, os.O_RDONLY)
            except OSError:
                return  # the copy itself reports the problem
            try:
                for pos in range(0, size, _READAHEAD_STEP):
                    step = min(_READAHEAD_STEP, size - pos)
                    with self.cond:
                        while not self.stopped and issued + step - self.consumed > self.window:
                            self.cond.wait()
                        if self.stopped:
                            return
                    os.posix_fadvise(fd, pos, step, os.POSIX_FADV_WILLNEED)
                    issued += step
            finally:
                os.close(fd)


def write_image(plan: Plan, out: Path, progress: Progress | None = None) -> None:
    """Write ``plan`` to the sparse file ``out`` (replaced only on success)."""
    out = Path(out)
    if out.exists() and not out.is_file():
        raise ImageTargetError(f"{out}: exists and is not a regular file; images go to files")
    tmp = out.with_name(f".{out.name}.partial")
    total = bytes_to_write(plan) if progress else 0
    done = 0
    readahead = _Readahead(plan) if hasattr(os, "posix_fadvise") else None
    started = False
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    writeback = _Writeback(fd) if hasattr(os, "posix_fadvise") and _WRITEBACK_STEP else None

    def advance(nbytes: int, end: int) -> None:
        if readahead is not None:
            readahead.advance(nbytes)
        if writeback is not None:
            writeback.wrote(end)

    try:
        os.ftruncate(fd, plan.capacity)
        if readahead is not None:  # content reads overlap the FAT and directory writes
            readahead.start()
            started = True
        if writeback is not None:
            writeback.start()
        for extent in plan.extents():
            source = extent.source
            if isinstance(source, Literal):
                _write_all(fd, source.data, extent.offset)
                if writeback is not None:
                    writeback.wrote(extent.offset + extent.length)
            elif isinstance(source, FileRange):
                src = _open_source(source.path)
                try:
                    size = os.fstat(src).st_size
                    expected = plan.files[source.index].file.size
                    if size != expected:
                        raise ContentChanged(
                            f"{source.path}: size changed from {expected} to {size} bytes "
                            "since the content was scanned"
                        )
                    _copy(
                        src,
                        fd,
                        source.offset,
                        extent.offset,
                        extent.length,
                        str(source.path),
                        advance,
                    )
                finally:
                    os.close(src)
            else:
                continue
            if progress:
                done += extent.length
                progress(done, total)
        if writeback is not None:
            writeback.stop()
            writeback.join()
        os.fsync(fd)  # on disk before it gets the final name
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    finally:
        if readahead is not None and started:
            readahead.stop()
            readahead.join()
        if writeback is not None and writeback.is_alive():
            writeback.stop()
            writeback.join()
        if fd >= 0:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def extract_partition(image: Path, offset: int, size: int, out: Path) -> Path:
    """Copy ``size`` bytes at ``offset`` of ``image`` to a new sparse file ``out``.

    Checkers such as ``fsck.fat`` take a filesystem, not a disk image.
    """
    with open(image, "rb") as src, open(out, "wb") as dst:
        dst.truncate(size)
        pos, end = offset, offset + size
        while pos < end:
            try:
                data_at = os.lseek(src.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            if data_at >= end:
                break
            hole_at = min(os.lseek(src.fileno(), data_at, os.SEEK_HOLE), end)
            _copy(
                src.fileno(), dst.fileno(), data_at, data_at - offset, hole_at - data_at, str(image)
            )
            pos = hole_at
    return out
