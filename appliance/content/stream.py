"""Hashing content again as it streams to the drives (the engine's source observer).

Verification on insertion proves the SSD was intact then; this proves every
byte the engine actually read is the signed one (an SSD can rot, be swapped
or be edited between insertion and a batch). It implements, structurally,
the engine's ``SourceObserver`` protocol::

    chunk(source, offset, data)   # every byte of each source file once per batch, in order
    file_done(source)             # after the last chunk of that file

``file_done`` raises :class:`ContentDamaged` ("content SSD damaged: <file>")
on a mismatch; the engine then fails the whole batch and leaves the drives
blank-looking. Nothing here imports the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.content.errors import ContentDamaged
from appliance.content.hashing import Hasher, new_hasher
from appliance.content.manifest import FileEntry


@dataclass
class _Running:
    entry: FileEntry
    hasher: Hasher
    position: int = 0


class StreamChecker:
    """Checks each source file's size and hash against its manifest entry as it streams.

    Thread-safe (one lock; the work per chunk is a hash update). Reusable:
    a file may stream again in a later batch, starting at offset 0.
    """

    def __init__(self, files: Iterable[tuple[Path, FileEntry]]) -> None:
        self._expected: dict[Path, FileEntry] = {Path(p): e for p, e in files}
        self._running: dict[Path, _Running] = {}
        self._lock = threading.Lock()
        self.files_checked = 0
        self.bytes_checked = 0

    def _damaged(self, entry: FileEntry, why: str) -> ContentDamaged:
        return ContentDamaged(f"content SSD damaged: {entry.path} ({why})")

    def _entry(self, source: Path) -> FileEntry:
        entry = self._expected.get(Path(source))
        if entry is None:
            raise ContentDamaged(
                f"content SSD damaged: {Path(source).name} is not in the signed manifest"
            )
        return entry

    def chunk(self, source: Path, offset: int, data: bytes) -> None:
        source = Path(source)
        with self._lock:
            entry = self._entry(source)
            run = self._running.get(source)
            if run is None:
                run = self._running[source] = _Running(entry, new_hasher(entry.algorithm))
            if offset != run.position:
                del self._running[source]
                raise self._damaged(
                    entry, f"read at offset {offset}, expected {run.position}; cannot verify"
                )
            if run.position + len(data) > entry.size:
                del self._running[source]
                raise self._damaged(entry, "longer than signed")
            run.hasher.update(data)
            run.position += len(data)
            self.bytes_checked += len(data)

    def file_done(self, source: Path) -> None:
        source = Path(source)
        with self._lock:
            entry = self._entry(source)
            run = self._running.pop(source, None)
            if run is None:
                run = _Running(entry, new_hasher(entry.algorithm))
            if run.position != entry.size:
                raise self._damaged(entry, f"{run.position} bytes read, {entry.size} signed")
            if run.hasher.hexdigest() != entry.digest:
                raise self._damaged(entry, "contents differ from the signed hash")
            self.files_checked += 1
