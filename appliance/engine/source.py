"""Read the content once and share it with every target: the bounded window.

One reader thread reads each content file once, front to back, in an order
that suits every plan (:func:`read_order`), hands each block to the optional
:class:`SourceObserver` and keeps it in a window shared by all targets. A block
leaves the window as soon as every target that needs it has copied it.

The window is bounded (``budget`` bytes). When it is full the reader waits.
If some target is starving (waiting for a block not read yet, or for the end
of the batch) while others hold the full window for more than ``LAG_SHARE`` of
a ``LAG_WINDOW``, the holders of the oldest block become *laggards*, and blocks
that only laggards (or starving targets) still need are dropped. A laggard
re-reads what it missed from the source itself (*catch-up*, counted in
``extra_reads`` and never shown to the observer) and rejoins when it copies a
block near the front again. So a slow stick costs a few extra reads and delays
the others by at most about a ``LAG_WINDOW``; sticks that drift apart a little
cost none.

Catch-up bytes are not trusted: the reader records an xxh3_64 of every block
as it reads it (8 bytes per block, per file), before the block counts as
produced, and a catch-up re-reads whole blocks and compares each with its
recorded hash before a single byte is copied. A laggard can only re-read
blocks already produced (otherwise it waits for the reader), so every
re-read block has a hash. A mismatch (a flaky SSD, a file replaced on the SSD
mid-batch) means the re-read bytes are not the ones the observer checked
against the manifest; it fails the whole batch with ``content SSD damaged:
<file>`` (code ``content_damaged``), like an observer failure: the SSD can no
longer be trusted, and the operator must see it, not just one red slot.

A failure of the source (``OSError``: SSD removed) or of the observer fails the
whole batch: every waiting target wakes up and raises :class:`SourceFailed`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import xxhash

from appliance.errors import FlashStationError

log = logging.getLogger(__name__)


#: Seconds a target may take to reach its content before the others start without it.
START_GRACE = 1.0
#: The reader measures, over windows of LAG_WINDOW seconds, how much of the time a full
#: window kept a starving target waiting; above LAG_SHARE it leaves the holders behind.
LAG_WINDOW = 2.0
LAG_SHARE = 0.75


class SourceObserver(Protocol):
    """Sees every byte of each source file exactly once per batch, in order.

    Implemented by the content area (structurally; it does not import the
    engine). ``file_done`` may raise: the batch then fails with its message.
    Both run on the reader thread; keep them fast.
    """

    def chunk(self, source: Path, offset: int, data: bytes) -> None: ...

    def file_done(self, source: Path) -> None: ...


class SourceFailed(FlashStationError):
    """The content source or the observer failed; the whole batch stops.

    ``code`` is ``content_removed`` (an ``OSError`` reading the source) or
    ``content_damaged`` (the observer refused the content, or a file changed).
    """

    def __init__(self, message: str, code: str = "content_damaged") -> None:
        super().__init__(message)
        self.code = code


class _NobodyLeft(Exception):
    """Every target ended: stop reading."""


class TargetStopped(Exception):
    """Raised inside a target's wait when that target was cancelled."""


def read_order(file_lists: Sequence[Sequence[Path]]) -> list[Path]:
    """Merge each plan's file order into one order that respects all of them.

    Plans from subsets of one content tree list files in the same relative
    order, so a merge exists; if they disagree, ties break by first plan, and
    targets that see a file earlier than the reader just wait or catch up.
    """
    order: list[Path] = []
    seen: set[Path] = set()
    heads = [0] * len(file_lists)
    where = [{p: i for i, p in enumerate(files)} for files in file_lists]
    total = len({p for files in file_lists for p in files})
    while len(order) < total:
        for i, files in enumerate(file_lists):
            while heads[i] < len(files) and files[heads[i]] in seen:
                heads[i] += 1
        live = [i for i, files in enumerate(file_lists) if heads[i] < len(files)]
        picked: Path | None = None
        for i in live:
            cand = file_lists[i][heads[i]]
            # Safe if no other plan still has an unread file before it.
            if all(where[j].get(cand, heads[j]) <= heads[j] for j in live):
                picked = cand
                break
        if picked is None:  # plans disagree: take the first plan's next file
            picked = file_lists[live[0]][heads[live[0]]]
        order.append(picked)
        seen.add(picked)
    return order


@dataclass
class _Block:
    data: bytes
    pending: set[int]
    seq: int


@dataclass
class SourceFeed:
    """The shared window between the reader thread and the target workers."""

    order: list[Path]
    sizes: dict[Path, int]
    needers: dict[Path, set[int]]  # target ids whose plan contains the file
    block_size: int = 1024 * 1024
    budget: int = 32 * 1024 * 1024
    observer: SourceObserver | None = None
    on_fail: Callable[[str], None] | None = None

    _cv: threading.Condition = field(default_factory=threading.Condition)
    _blocks: OrderedDict[tuple[Path, int], _Block] = field(default_factory=OrderedDict)
    _held: int = 0
    _produced: dict[Path, int] = field(default_factory=dict)
    _writing: set[int] = field(default_factory=set)  # targets still copying content
    _alive: set[int] = field(default_factory=set)  # targets not ended yet
    _starving: set[int] = field(default_factory=set)
    _stopped: set[int] = field(default_factory=set)
    _finished: bool = False
    _failed: str | None = None
    _failed_code: str = "content_damaged"
    _seq: int = 0  # blocks published so far
    _laggards: set[int] = field(default_factory=set)
    _blocked_since: float | None = None
    _blocked_total: float = 0.0
    _window_start: float = field(default_factory=time.monotonic)
    _ready: set[int] = field(default_factory=set)
    _first_ready: float | None = None
    _started_at: float = field(default_factory=time.monotonic)
    #: targets still waiting at their job's start gate (e.g. a stagger turn)
    _gated: set[int] = field(default_factory=set)
    _last_gate: float | None = None
    _thread: threading.Thread | None = None
    #: xxh3_64 of every block the reader produced, per file, indexed by block number.
    _hashes: dict[Path, array[int]] = field(default_factory=dict)
    #: Each catching-up target's last re-read (and checked) block: (path, index, data).
    _reread: dict[int, tuple[Path, int, bytes]] = field(default_factory=dict)
    primary_reads: int = 0
    forced_evictions: int = 0
    peak_held: int = 0

    # -- life cycle --------------------------------------------------------
    @property
    def _rejoin(self) -> int:
        """A laggard this many blocks from the newest one is back with the others."""
        return max(1, self.budget // self.block_size // 4)

    def expect_gate(self, tid: int) -> None:
        """``tid`` will wait at a start gate first (call before :meth:`start`)."""
        self._gated.add(tid)

    def gate_passed(self, tid: int) -> None:
        """``tid`` left its start gate (its turn came, or it was cancelled there)."""
        with self._cv:
            self._gated.discard(tid)
            self._last_gate = time.monotonic()
            self._cv.notify_all()

    def start(self, targets: Sequence[int]) -> None:
        self._started_at = time.monotonic()
        self._writing = set(targets)
        self._alive = set(targets)
        self._thread = threading.Thread(target=self._run, name="engine-source", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    @property
    def failed(self) -> str | None:
        return self._failed

    @property
    def failed_code(self) -> str:
        return self._failed_code

    def fail(self, reason: str, code: str = "content_damaged") -> None:
        with self._cv:
            if self._failed is None:
                self._failed = reason
                self._failed_code = code
            self._cv.notify_all()
        if self.on_fail is not None:
            self.on_fail(reason)

    def stop_target(self, tid: int) -> None:
        """Wake ``tid`` if it waits (it was cancelled)."""
        with self._cv:
            self._stopped.add(tid)
            self._cv.notify_all()

    def writing_done(self, tid: int) -> None:
        """``tid`` needs no more content blocks."""
        with self._cv:
            self._release(tid)
            self._cv.notify_all()

    def target_done(self, tid: int) -> None:
        """``tid`` ended (any status): it needs nothing more."""
        with self._cv:
            self._release(tid)
            self._alive.discard(tid)
            self._gated.discard(tid)
            self._starving.discard(tid)
            self._cv.notify_all()

    def _release(self, tid: int) -> None:
        self._writing.discard(tid)
        self._reread.pop(tid, None)
        for key in list(self._blocks):
            block = self._blocks[key]
            block.pending.discard(tid)
            if not block.pending:
                self._drop(key)

    def _drop(self, key: tuple[Path, int]) -> None:
        block = self._blocks.pop(key)
        self._held -= len(block.data)

    # -- reader thread -----------------------------------------------------
    def _run(self) -> None:
        try:
            for path in self.order:
                with self._cv:
                    if not self._alive or self._failed:
                        return
                self._read_file(path)
            with self._cv:
                self._finished = True
                self._cv.notify_all()
        except _NobodyLeft:
            return
        except SourceFailed as exc:
            self.fail(str(exc), exc.code)
        except OSError as exc:
            self.fail(
                f"content SSD removed or unreadable ({exc.filename or ''}: {exc.strerror})",
                "content_removed",
            )
        except Exception as exc:  # the observer's verdict, in its own words
            log.info("source observer failed the batch: %s", exc)
            self.fail(str(exc) or type(exc).__name__)

    def _read_file(self, path: Path) -> None:
        size = self.sizes[path]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            offset = 0
            index = 0
            while offset < size:
                want = min(self.block_size, size - offset)
                data = os.pread(fd, want, offset)
                if len(data) != want:
                    raise SourceFailed(f"content file changed while loading: {path} is shorter")
                self.primary_reads += want
                if self.observer is not None:
                    self.observer.chunk(path, offset, data)
                self._publish(path, index, offset, data, xxhash.xxh3_64_intdigest(data))
                offset += want
                index += 1
            # Drop what we read from the page cache: it is in the window already.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if self.observer is not None:
            self.observer.file_done(path)

    def _publish(self, path: Path, index: int, offset: int, data: bytes, digest: int) -> None:
        with self._cv:
            if not self._alive:
                raise _NobodyLeft()
            hashes = self._hashes.setdefault(path, array("Q"))
            if len(hashes) == index:  # recorded before the block counts as produced
                hashes.append(digest)
            pending = self.needers.get(path, set()) & self._writing
            if pending:
                while pending and self._held + len(data) > self.budget and self._blocks:
                    if self._failed:
                        return
                    starving = bool(self._starving)
                    if starving and self._evict_for_laggards():
                        continue
                    now = time.monotonic()
                    share = self._account(now, blocked=starving)
                    if starving and share is not None and share > LAG_SHARE:
                        # The window held others up most of the last LAG_WINDOW:
                        # whoever still holds its oldest block is a laggard.
                        oldest = next(iter(self._blocks.values()))
                        self._laggards |= oldest.pending - self._starving
                        continue
                    left = LAG_WINDOW - (now - self._window_start)
                    self._cv.wait(max(left, 0.01) if starving else None)
                    pending &= self._writing
                self._account(time.monotonic(), blocked=False)
                if pending:
                    self._blocks[(path, index)] = _Block(data, pending, self._seq)
                    self._seq += 1
                    self._held += len(data)
                    self.peak_held = max(self.peak_held, self._held)
            self._produced[path] = offset + len(data)
            self._cv.notify_all()

    def _account(self, now: float, *, blocked: bool) -> float | None:
        """Track the share of time the full window kept a starving target waiting.

        Returns that share once per LAG_WINDOW (then starts a new window), else None.
        """
        if self._blocked_since is not None:
            self._blocked_total += now - self._blocked_since
            self._blocked_since = None
        elif blocked and not self._blocked_total:
            self._window_start = now  # measure from the first wait, not from long ago
        if blocked:
            self._blocked_since = now
        span = now - self._window_start
        if span < LAG_WINDOW:
            return None
        share = self._blocked_total / span
        self._window_start = now
        self._blocked_total = 0.0
        return share

    def _evict_for_laggards(self) -> bool:
        """Drop the oldest block that only laggards (or starving targets) need; False if none.

        A laggard kept the others waiting too long; it re-reads what it
        misses from the source and stops being a laggard once it copies a block
        near the front again. Healthy sticks that drift apart a little are never
        robbed, so they cost no extra reads.
        """
        for key, block in self._blocks.items():
            if all(t in self._starving or t in self._laggards for t in block.pending):
                self._drop(key)
                self.forced_evictions += 1
                return True
        return False

    # -- target side -------------------------------------------------------
    def copy_into(self, tid: int, path: Path, offset: int, out: memoryview) -> int:
        """Fill ``out`` with bytes of ``path`` from ``offset``; return catch-up bytes read."""
        extra = 0
        pos = 0
        length = len(out)
        bs = self.block_size
        while pos < length:
            at = offset + pos
            index = at // bs
            start = index * bs
            data: bytes | None = None
            with self._cv:
                while True:
                    self._check(tid)
                    block = self._blocks.get((path, index))
                    if block is not None:
                        data = block.data
                        if tid in self._laggards and self._seq - block.seq <= self._rejoin:
                            self._laggards.discard(tid)  # caught up with the front
                        break
                    if self._produced.get(path, 0) > at:
                        break  # read already and dropped: catch up ourselves
                    self._starving.add(tid)
                    self._cv.notify_all()
                    self._cv.wait()
                    self._starving.discard(tid)
            n = min(length - pos, start + bs - at)
            if data is not None:
                self._reread.pop(tid, None)
                n = min(n, start + len(data) - at)
                out[pos : pos + n] = data[at - start : at - start + n]
                if at + n >= start + len(data):
                    with self._cv:
                        block = self._blocks.get((path, index))
                        if block is not None:
                            block.pending.discard(tid)
                            if not block.pending:
                                self._drop((path, index))
                                self._cv.notify_all()
            else:
                extra += self._catch_up(tid, path, index, at, out[pos : pos + n])
            pos += n
        return extra

    def _catch_up(self, tid: int, path: Path, index: int, at: int, out: memoryview) -> int:
        """Fill ``out`` from block ``index`` re-read from the SSD; return the bytes re-read.

        The whole block is re-read and compared with the hash the reader
        recorded, so nothing unchecked reaches a stick. The last re-read block
        is kept per target (pieces of one block often fall in two chunks).
        """
        start = index * self.block_size
        cached = self._reread.get(tid)
        read = 0
        if cached is not None and cached[0] == path and cached[1] == index:
            data = cached[2]
        else:
            self._reread.pop(tid, None)
            want = min(self.block_size, self.sizes[path] - start)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    data = os.pread(fd, want, start)
                finally:
                    os.close(fd)
            except OSError as exc:
                reason = f"content SSD removed or unreadable ({path}: {exc.strerror})"
                self.fail(reason, "content_removed")
                raise SourceFailed(reason, "content_removed") from exc
            read = len(data)
            with self._cv:
                hashes = self._hashes.get(path)
                expected = hashes[index] if hashes is not None and index < len(hashes) else None
            if expected is None:  # cannot happen: only produced blocks are re-read
                raise RuntimeError(f"catch-up of {path} block {index} before it was read")
            if len(data) != want or xxhash.xxh3_64_intdigest(data) != expected:
                reason = (
                    f"content SSD damaged: {path} (re-read at offset {start} differs "
                    "from the first read)"
                )
                log.warning("%s", reason)
                self.fail(reason, "content_damaged")
                raise SourceFailed(reason, "content_damaged")
            self._reread[tid] = (path, index, data)
        out[:] = data[at - start : at - start + len(out)]
        return read

    def _check(self, tid: int) -> None:
        if self._failed is not None:
            raise SourceFailed(self._failed, self._failed_code)
        if tid in self._stopped:
            raise TargetStopped()

    def wait_start(self, tid: int) -> None:
        """Hold ``tid`` at its write pass until every live target got there (or START_GRACE).

        Probes take different times; starting the content together keeps equal
        sticks inside the window instead of making the last one a laggard that
        re-reads everything. A slow prober delays the others by START_GRACE at most.
        Targets still waiting at a start gate (staggered starts) are waited for: they
        will come, and each would otherwise re-read the whole content as a laggard.
        The last one through its gate gets as long to probe as the first one needed,
        plus START_GRACE.
        """
        with self._cv:
            self._ready.add(tid)
            if self._first_ready is None:
                self._first_ready = time.monotonic()
            self._cv.notify_all()
            while not self._alive <= self._ready:
                self._check(tid)
                if self._gated & self._alive:
                    self._cv.wait()  # gate_passed, target_done and stop_target notify
                    continue
                deadline = self._first_ready + START_GRACE
                if self._last_gate is not None:
                    probe = max(0.0, self._first_ready - self._started_at)
                    deadline = max(deadline, self._last_gate + probe + START_GRACE)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)

    def wait_finished(self, tid: int) -> None:
        """Block until every file was read and accepted by the observer."""
        with self._cv:
            while not self._finished:
                self._check(tid)
                if not self._alive:
                    return
                self._starving.add(tid)
                self._cv.notify_all()
                self._cv.wait()
                self._starving.discard(tid)
            self._check(tid)
