"""Verifying an inserted SSD in the background, with progress, cancel and a result cache.

The station shows progress while every file is hashed (minutes for a full
SSD). The result is remembered by *manifest hash* in a cache directory the
station passes (its state dir), together with a fingerprint of the files'
names, sizes and modification times, so a re-inserted SSD whose files look
untouched is ready at once. A cache hit is not blind trust: the engine's
:class:`~appliance.content.stream.StreamChecker` hashes every byte again as
it is loaded, so an SSD edited behind the fingerprint's back still fails the
batch with "content SSD damaged".

Only successes are cached; a failed or cancelled verification runs again on
the next insertion.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.content.errors import ContentRemoved, VerifyCancelled
from appliance.content.hashing import new_hasher
from appliance.content.manifest import MANIFEST_NAME
from appliance.content.pack import Pack, Progress

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def fingerprint(pack: Pack) -> str:
    """BLAKE3 over every listed file's path, size and mtime (cheap: no file is read)."""
    h = new_hasher("blake3")
    for path in sorted(pack.listing.files):
        disk = pack.listing.files[path]
        h.update(f"{path}\0{disk.size}\0{disk.mtime_ns}\n".encode())
    return h.hexdigest()


class VerifyCache:
    """``<cache_dir>/<manifest hash>.json`` records packs that verified completely."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = Path(cache_dir)

    def _path(self, pack: Pack) -> Path:
        return self.dir / f"{pack.manifest_hash}.json"

    def is_verified(self, pack: Pack) -> bool:
        try:
            record = json.loads(self._path(pack).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (
            isinstance(record, dict)
            and record.get("version") == CACHE_VERSION
            and record.get("manifest") == pack.manifest_hash
            and record.get("fingerprint") == fingerprint(pack)
        )

    def remember(self, pack: Pack) -> None:
        record = {
            "version": CACHE_VERSION,
            "manifest": pack.manifest_hash,
            "fingerprint": fingerprint(pack),
            "files": len(pack.manifest.files),
        }
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self._path(pack).with_suffix(".tmp")
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self._path(pack))
        except OSError as exc:  # a full or read-only state dir must not stop loading
            log.warning("cannot cache verification result in %s: %s", self.dir, exc)

    def forget(self, pack: Pack) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(pack).unlink()


@dataclass
class VerifyResult:
    """How background verification ended."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    cached: bool = False  # ready at once from the cache
    cancelled: bool = False
    error: Exception | None = None  # ContentRemoved, or an unexpected failure

    @property
    def removed(self) -> bool:
        """The SSD went away during verification: show "insert content", not "damaged"."""
        return isinstance(self.error, ContentRemoved)

    @property
    def message(self) -> str:
        if self.ok:
            return "content verified" + (" (remembered)" if self.cached else "")
        if self.cancelled:
            return "verification cancelled"
        if self.error is not None:
            return str(self.error)
        return f"content does not match its manifest: {self.problems[0]}" + (
            f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        )


class BackgroundVerifier:
    """Hash every file of ``pack`` on a thread; report progress; cancellable.

    ``on_progress(done, total, path)`` and ``on_done(result)`` run on the
    verifier's thread: hand them to the station's own queue, do not block.
    ``is_present()`` tells a removed SSD from damaged files (default: the
    manifest can still be seen).
    """

    def __init__(
        self,
        pack: Pack,
        *,
        cache: VerifyCache | None = None,
        on_progress: Progress | None = None,
        on_done: Callable[[VerifyResult], None] | None = None,
        is_present: Callable[[], bool] | None = None,
    ) -> None:
        self.pack = pack
        self.cache = cache
        self._on_progress = on_progress
        self._on_done = on_done
        self._is_present = is_present or (lambda: (pack.root / MANIFEST_NAME).exists())
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result: VerifyResult | None = None
        self._thread = threading.Thread(target=self._run, name="content-verify", daemon=True)

    def start(self) -> BackgroundVerifier:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> VerifyResult | None:
        self._done.wait(timeout)
        return self._result

    @property
    def result(self) -> VerifyResult | None:
        return self._result

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._verify()
        except Exception as exc:  # reported, never lost on a dead thread
            log.exception("content verification failed")
            result = VerifyResult(False, error=exc)
        self._result = result
        self._done.set()
        if self._on_done is not None:
            self._on_done(result)

    def _verify(self) -> VerifyResult:
        pack = self.pack
        if self.cache is not None and self.cache.is_verified(pack):
            total = pack.manifest.total_bytes
            if self._on_progress is not None:
                self._on_progress(total, total, "")
            return VerifyResult(True, cached=True)
        try:
            problems = pack.verify(progress=self._on_progress, cancel=self._cancel)
        except VerifyCancelled:
            if not self._is_present():
                return VerifyResult(False, error=ContentRemoved("content SSD removed"))
            return VerifyResult(False, cancelled=True)
        if not self._is_present():
            return VerifyResult(False, error=ContentRemoved("content SSD removed"))
        if problems:
            return VerifyResult(False, problems=problems)
        if self.cache is not None:
            self.cache.remember(pack)
        return VerifyResult(True)
