"""Replacing small files so that a power cut leaves the old or the new one, never a torn one.

The station's state (last good config, slot numbers, known content media) and
a sealed pack's manifest are rewritten whole: into a temporary file in the same
folder, flushed to disk, renamed over the old one, and the folder flushed so
the rename itself survives a cut (the ledger is SQLite and needs none of this).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

DAY = 86400  # seconds


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8), created with ``mode``."""
    path = Path(path)
    body = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # an old temporary file keeps its mode otherwise
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def blur_mtime(path: Path, period: int) -> None:
    """Set ``path``'s access and modification times to the start (UTC) of the current
    ``period`` seconds (3600: the hour, :data:`DAY`): when a state file was written is
    nobody's business to the second."""
    moment = time.time() // period * period
    with contextlib.suppress(FileNotFoundError):
        os.utime(path, (moment, moment))
