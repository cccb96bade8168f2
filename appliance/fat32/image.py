"""Writing a plan to a sparse image file.

Zeros are never written: the file is created at full length, empty, so every
zeros extent stays a hole (a 256 GB image of 1 GB of content takes 1 GB of
disk). File data is copied inside the kernel with ``os.copy_file_range``
(no trip through Python buffers; ``cp`` does the same), falling back to large
buffered copies where the kernel or filesystem cannot. The image is written
under a temporary name and renamed when complete, so a failed run never leaves
something that looks like a finished image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from appliance.fat32.plan import FileRange, LayoutError, Literal, Plan

Progress = Callable[[int, int], None]
_BUFFER = 8 * 1024 * 1024


class ContentChanged(LayoutError):
    """A content file changed size between scanning and writing."""


def bytes_to_write(plan: Plan) -> int:
    """Bytes that are not zeros (what the progress total counts)."""
    return sum(e.length for e in plan.extents() if not _is_zeros(e.source))


def _is_zeros(source: object) -> bool:
    return not isinstance(source, Literal | FileRange)


def _copy(src: int, dst: int, src_offset: int, dst_offset: int, length: int, name: str) -> None:
    use_kernel = True
    while length > 0:
        if use_kernel:
            try:
                done = os.copy_file_range(src, dst, min(length, 1 << 30), src_offset, dst_offset)
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


def write_image(plan: Plan, out: Path, progress: Progress | None = None) -> None:
    """Write ``plan`` to the sparse file ``out`` (replaced only on success)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    total = bytes_to_write(plan) if progress else 0
    done = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, plan.capacity)
        for extent in plan.extents():
            source = extent.source
            if isinstance(source, Literal):
                os.pwrite(fd, source.data, extent.offset)
            elif isinstance(source, FileRange):
                with open(source.path, "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    if size != source.offset + extent.length:
                        raise ContentChanged(
                            f"{source.path}: size changed from "
                            f"{source.offset + extent.length} to {size} bytes since the scan"
                        )
                    _copy(
                        src.fileno(),
                        fd,
                        source.offset,
                        extent.offset,
                        extent.length,
                        str(source.path),
                    )
            else:
                continue
            if progress:
                done += extent.length
                progress(done, total)
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()
