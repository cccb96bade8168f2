"""One batch: many targets, each with its own plan, fed from one read of the content.

Per target a worker thread runs, strictly in this order::

    open -> check size and write protection -> zero sector 0 + flush
         -> probe (fake capacity) -> write pass (content + wipe, hashing each chunk)
         -> flush -> verify pass (read back bypassing the cache, compare hashes)
         -> wait until the source was read completely and accepted by the observer
         -> commit (MBR written, flushed, read back and compared)

Sector 0 is zero from the first write until the commit, so a stick pulled,
failed or cancelled at any moment has no valid partition table. Every failure
is caught in the worker and becomes that target's result: the other targets
go on. Nothing polls: workers block in system calls or on the source window's
condition variable; cancellation wakes them.
"""

from __future__ import annotations

import array
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from appliance.drives.errors import (
    DriveError,
    FakeCapacity,
    TooSmall,
    VerifyFailed,
    WriteProtected,
)
from appliance.drives.target import ALIGN, Target, aligned_buffer, open_target
from appliance.engine.chunks import Chunk, chunks
from appliance.engine.events import (
    BatchFinished,
    EventCallback,
    EventDispatcher,
    Phase,
    PhaseChanged,
    Progress,
    Status,
    TargetFinished,
    TargetResult,
    WipeMode,
)
from appliance.engine.probe import fake_capacity_check, old_partition_areas
from appliance.engine.source import (
    SourceFailed,
    SourceFeed,
    SourceObserver,
    TargetStopped,
    read_order,
)
from appliance.fat32.plan import FileRange, Literal, Plan, Zeros

log = logging.getLogger(__name__)
MiB = 1024 * 1024
#: Roles that make up the file system: always written, even by a quick wipe.
FS_ROLES = frozenset({"mbr", "gap", "boot", "fat", "dir", "data"})
QUICK_SPAN = 32 * MiB
#: Longest run of zero chunks written in one call (from one shared buffer: no memory per target).
ZERO_RUN = 4 * MiB


@dataclass(frozen=True)
class LoadOptions:
    """How a batch runs. The defaults are what the station uses."""

    wipe: WipeMode = "full"
    chunk_size: int = 1 * MiB  # write/hash/verify unit; a multiple of 4096
    buffer_budget: int = 32 * MiB  # the shared content window (see source.py)
    min_capacity: int = 64 * MiB  # smaller targets fail "too small"
    probe_points: int = 64
    #: Full wipe only: read a chunk that should become zeros first and skip the
    #: write when it already reads back as zeros (see docs/throughput.md).
    skip_zero_chunks: bool = False
    progress_interval: float = 0.25  # seconds between progress events per target

    def __post_init__(self) -> None:
        if self.wipe not in ("full", "quick"):
            raise ValueError(f"wipe must be 'full' or 'quick', not {self.wipe!r}")
        if self.chunk_size <= 0 or self.chunk_size % ALIGN:
            raise ValueError(f"chunk_size must be a positive multiple of {ALIGN}")


@dataclass
class Job:
    """One target of a batch: a path (opened with the safety checks) or a Target, and its plan."""

    target: str | Path | Target
    plan: Plan
    name: str | None = None
    #: Called on the target's worker thread before the drive is opened, with the
    #: target's cancel event: blocks until the target may start (e.g. the service's
    #: ``Stagger.wait_turn``, spacing the inrush of sticks plugged at once) and returns
    #: False when cancelled meanwhile. The batch still reads the content once: the
    #: write pass waits for gated targets (see ``SourceFeed.wait_start``).
    start_gate: Callable[[threading.Event], bool] | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if isinstance(self.target, (str, Path)):
            return str(self.target)
        return self.target.path


class _Cancelled(Exception):
    pass


@dataclass
class _Counters:
    written: int = 0
    verified: int = 0
    bus: int = 0
    extra: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class _Zeros:
    """A shared, read-only, aligned buffer of zeros and the hashes of its prefixes."""

    def __init__(self, size: int) -> None:
        self.buf = aligned_buffer(size)
        self.view = memoryview(self.buf)
        self._hashes: dict[int, int] = {}

    def hash(self, length: int) -> int:
        h = self._hashes.get(length)
        if h is None:
            h = self._hashes[length] = xxhash.xxh3_64_intdigest(self.view[:length])
        return h


class _Worker:
    def __init__(self, batch: Batch, tid: int, job: Job) -> None:
        self.batch = batch
        self.tid = tid
        self.job = job
        self.name = job.label
        self.plan = job.plan
        self.opts = batch.options
        self.count = _Counters()
        self.cancel_event = threading.Event()
        self.target: Target | None = None
        self.phase: Phase = "open"
        self._last_event = 0.0
        self._phase_start = time.monotonic()
        self.content_bytes = sum(f.file.size for f in self.plan.files)
        self.thread = threading.Thread(target=self.run, name=f"engine-{tid}", daemon=True)

    # -- events --------------------------------------------------------------
    def _enter(self, phase: Phase) -> None:
        now = time.monotonic()
        if self.phase in ("probe", "write", "verify", "commit"):
            self.count.seconds[self.phase] = self.count.seconds.get(self.phase, 0.0) + (
                now - self._phase_start
            )
        self.phase = phase
        self._phase_start = now
        self._last_event = 0.0
        self.batch.events.send(PhaseChanged(self.name, phase))

    def _progress(self, done: int, total: int, later: int = 0, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_event < self.opts.progress_interval:
            return
        self._last_event = now
        took = now - self._phase_start
        speed = done / took if took > 0 else 0.0
        eta = (total - done + later) / speed if speed > 0 else None
        self.batch.events.send(Progress(self.name, self.phase, done, total, speed, eta))

    def _check(self) -> None:
        if self.cancel_event.is_set():
            raise _Cancelled()
        failed = self.batch.feed.failed
        if failed is not None:
            raise SourceFailed(failed, self.batch.feed.failed_code)

    # -- I/O with accounting -------------------------------------------------
    def _write(self, offset: int, data: memoryview) -> None:
        assert self.target is not None
        self.target.pwrite(offset, data)
        self.count.written += len(data)
        self.count.bus += len(data)

    def _read(self, offset: int, buf: memoryview) -> None:
        assert self.target is not None
        self.target.read_direct(offset, buf)
        self.count.bus += len(buf)

    # -- the run -------------------------------------------------------------
    def run(self) -> None:
        status: Status = "ok"
        reason = cause = ""
        detail: dict[str, float] = {}
        notes: list[str] = []
        try:
            self._run(notes)
        except (_Cancelled, TargetStopped):
            status, reason, cause = "cancelled", "cancelled", "cancelled"
        except SourceFailed as exc:
            status, reason, cause = "failed", str(exc), exc.code
        except DriveError as exc:
            status, reason, cause = "failed", str(exc), exc.code
            if isinstance(exc, FakeCapacity):
                detail = {"real": float(exc.real), "claimed": float(exc.claimed)}
        except Exception as exc:
            log.exception("engine worker for %s failed", self.name)
            status, reason, cause = "failed", f"{self.name}: internal error: {exc}", "unknown"
        finally:
            self.batch.feed.target_done(self.tid)
            self._enter("done")
            if self.target is not None:
                self.target.close()
        if self.opts.wipe == "quick":
            notes.append("quick wipe: donor data may remain in free space")
        result = TargetResult(
            target=self.name,
            status=status,
            reason=reason,
            capacity=self.target.capacity if self.target is not None else 0,
            bytes_written=self.count.written,
            bytes_verified=self.count.verified,
            seconds=dict(self.count.seconds),
            bus_bytes=self.count.bus,
            content_bytes=self.content_bytes,
            source_extra_reads=self.count.extra,
            wipe=self.opts.wipe,
            notes=tuple(notes),
            cause=cause,
            detail=detail,
        )
        self.batch._finished(self.tid, result)

    def _run(self, notes: list[str]) -> None:
        job = self.job
        if job.start_gate is not None:
            try:
                passed = job.start_gate(self.cancel_event)
            finally:
                self.batch.feed.gate_passed(self.tid)
            if not passed:
                raise _Cancelled()
        self._enter("open")
        if isinstance(job.target, (str, Path)):
            self.target = open_target(job.target, protect=self.batch.protect)
        else:
            self.target = job.target
        target = self.target
        self._check()
        self._enter("probe")
        cap = target.capacity
        if cap < self.opts.min_capacity:
            raise TooSmall(
                target.path,
                f"too small: {cap / 1e6:.0f} MB, the minimum is "
                f"{self.opts.min_capacity / 1e6:.0f} MB",
            )
        if self.plan.capacity != cap:
            raise TooSmall(
                target.path, f"plan is for {self.plan.capacity} bytes but the drive holds {cap}"
            )
        if target.write_protected():
            raise WriteProtected(target.path, "write-protected (lock switch or read-only drive)")
        wipe_ranges: list[tuple[int, int]] = []
        first = aligned_buffer(32 * 1024)
        try:
            if self.opts.wipe == "quick":
                self._read(0, memoryview(first))
                wipe_ranges += old_partition_areas(bytes(first), cap, QUICK_SPAN)
            # Sector 0 is zeroed first: from now on the drive has no partition table.
            memoryview(first)[:ALIGN] = bytes(ALIGN)
            self._write(0, memoryview(first)[:ALIGN])
            target.flush()
        finally:
            del first
        self._check()
        probe = fake_capacity_check(target, self.opts.probe_points)
        self.count.bus += probe.bus_bytes
        self.count.written += probe.bus_bytes // 2
        if self.opts.skip_zero_chunks or self.opts.wipe == "quick":
            self._blank_probe(probe.offsets)
        wipe_ranges += [(0, QUICK_SPAN), (max(0, cap - QUICK_SPAN), cap)]
        self._check()
        self.batch.feed.wait_start(self.tid)
        self._enter("write")
        records, head = self._write_pass(wipe_ranges)
        target.flush()
        self.batch.feed.writing_done(self.tid)
        self._enter("verify")
        self._verify_pass(records)
        self._enter("commit")
        self.batch.feed.wait_finished(self.tid)
        self._check()
        self._commit(head)

    def _blank_probe(self, offsets: list[int]) -> None:
        """Put zeros back over the probe's tags and check them (quick wipe, skip-zero mode)."""
        assert self.target is not None
        zeros = self.batch.zeros.view[:ALIGN]
        for off in offsets:
            self._write(off, zeros)
        self.target.flush()
        back = aligned_buffer(ALIGN)
        for off in offsets:
            self._read(off, memoryview(back))
            if bytes(back) != bytes(ALIGN):
                raise VerifyFailed(
                    self.target.path, "verify failed: probe area not blank", offset=off
                )
            self.count.verified += ALIGN

    def _wanted(self, chunk: Chunk, ranges: list[tuple[int, int]]) -> bool:
        if self.opts.wipe == "full":
            return True
        if any(p.role in FS_ROLES for p in chunk.pieces):
            return True
        end = chunk.offset + chunk.length
        return any(a < end and chunk.offset < b for a, b in ranges)

    def _write_pass(
        self, ranges: list[tuple[int, int]]
    ) -> tuple[tuple[array.array[int], array.array[int]], bytes]:
        assert self.target is not None
        zeros = self.batch.zeros
        size = self.opts.chunk_size
        buf = aligned_buffer(size)
        view = memoryview(buf)
        offsets: array.array[int] = array.array("Q")
        hashes: array.array[int] = array.array("Q")
        head = b""
        total = self._bytes_to_write(ranges)
        done = 0
        later = total  # verify reads the same bytes again
        feed = self.batch.feed
        run_start = run_len = 0

        def flush_run() -> None:
            nonlocal run_len
            if run_len:
                self._write(run_start, zeros.view[:run_len])
                run_len = 0
                self._progress(done, total, later)

        try:
            for chunk in chunks(self.plan.extents(), self.plan.capacity, size):
                self._check()
                if not self._wanted(chunk, ranges):
                    continue
                n = chunk.length
                if chunk.zeros_only and chunk.offset != 0:
                    if self.opts.skip_zero_chunks and self.opts.wipe == "full":
                        self._read(chunk.offset, view[:n])
                        if xxhash.xxh3_64_intdigest(view[:n]) == zeros.hash(n) and bytes(
                            view[:n]
                        ) == bytes(n):
                            self.count.verified += n
                            done += n
                            later -= n
                            self._progress(done, total, later)
                            continue
                    # Zeros come from one shared buffer: gather a run and write it
                    # in one call (fewer, larger I/Os); hashes stay per chunk.
                    if run_len and run_start + run_len == chunk.offset and run_len + n <= ZERO_RUN:
                        run_len += n
                    else:
                        flush_run()
                        run_start, run_len = chunk.offset, n
                    offsets.append(chunk.offset)
                    hashes.append(zeros.hash(n))
                    done += n
                    if run_len >= ZERO_RUN:
                        flush_run()
                    continue
                flush_run()
                for piece in chunk.pieces:
                    at = piece.offset - chunk.offset
                    dest = view[at : at + piece.length]
                    src = piece.source
                    if piece.role == "mbr" or isinstance(src, Zeros):
                        dest[:] = zeros.view[: piece.length]
                    elif isinstance(src, Literal):
                        dest[:] = src.data[piece.position : piece.position + piece.length]
                    elif isinstance(src, FileRange):
                        self.count.extra += feed.copy_into(self.tid, src.path, piece.position, dest)
                data = view[:n]
                digest = xxhash.xxh3_64_intdigest(data)
                if chunk.offset == 0:
                    head = bytes(data[:ALIGN])
                self._write(chunk.offset, data)
                offsets.append(chunk.offset)
                hashes.append(digest)
                done += n
                self._progress(done, total, later)
            flush_run()
        finally:
            del view, buf  # freed when the last slice goes
        self._progress(done, total, later, force=True)
        if not head:
            raise VerifyFailed(self.target.path, "plan does not start at offset 0", offset=0)
        return (offsets, hashes), head

    def _bytes_to_write(self, ranges: list[tuple[int, int]]) -> int:
        if self.opts.wipe == "full":
            return self.plan.capacity
        fs = sum(e.length for e in self.plan.extents() if e.role in FS_ROLES)
        return fs + sum(b - a for a, b in ranges)

    def _verify_pass(self, records: tuple[array.array[int], array.array[int]]) -> None:
        assert self.target is not None
        offsets, hashes = records
        size = self.opts.chunk_size
        buf = aligned_buffer(size)
        view = memoryview(buf)
        cap = self.plan.capacity
        total = sum(min(size, cap - off) for off in offsets)
        done = 0
        try:
            for off, expected in zip(offsets, hashes, strict=True):
                self._check()
                n = min(size, cap - off)
                self._read(off, view[:n])
                if xxhash.xxh3_64_intdigest(view[:n]) != expected:
                    raise VerifyFailed(
                        self.target.path,
                        f"verify failed: the {n} bytes read back from offset {off} differ "
                        "from what was written",
                        offset=off,
                    )
                self.count.verified += n
                done += n
                self._progress(done, total)
        finally:
            del view, buf  # freed when the last slice goes
        self._progress(done, total, force=True)

    def _commit(self, head: bytes) -> None:
        """Write the partition table last, flush, read it back."""
        assert self.target is not None
        mbr = self.plan.mbr
        if len(mbr) != 512:
            raise VerifyFailed(
                self.target.path, f"plan's MBR has {len(mbr)} bytes, not 512", offset=0
            )
        block = aligned_buffer(ALIGN)
        back = aligned_buffer(ALIGN)
        try:
            memoryview(block)[:] = mbr + head[512:ALIGN]
            self._write(0, memoryview(block))
            self.target.flush()
            self._read(0, memoryview(back))
            if bytes(back) != bytes(block):
                # Leave no half-valid table behind.
                try:
                    memoryview(block)[:] = bytes(ALIGN)
                    self.target.pwrite(0, block)
                    self.target.flush()
                except DriveError:
                    pass
                raise VerifyFailed(self.target.path, "partition table read back differs", offset=0)
            self.count.verified += ALIGN
        finally:
            del block, back


class Batch:
    """A running batch. Create with :func:`start_batch`."""

    def __init__(
        self,
        jobs: Sequence[Job],
        options: LoadOptions,
        on_event: EventCallback | None,
        observer: SourceObserver | None,
        protect: Sequence[Path],
    ) -> None:
        names = [job.label for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError("every job in a batch needs a distinct name")
        self.options = options
        self.protect = tuple(protect)
        self.events = EventDispatcher(on_event)
        self.zeros = _Zeros(max(options.chunk_size, ZERO_RUN))
        self._lock = threading.Lock()
        self._results: dict[int, TargetResult] = {}
        self._done = threading.Event()
        file_lists: list[list[Path]] = []
        sizes: dict[Path, int] = {}
        needers: dict[Path, set[int]] = {}
        for tid, job in enumerate(jobs):
            files = []
            for planned in job.plan.files:
                src = planned.file.source
                known = sizes.setdefault(src, planned.file.size)
                if known != planned.file.size:
                    raise ValueError(f"plans disagree about the size of {src}")
                files.append(src)
                needers.setdefault(src, set()).add(tid)
            file_lists.append(files)
        self.feed = SourceFeed(
            order=read_order(file_lists),
            sizes=sizes,
            needers=needers,
            budget=options.buffer_budget,
            observer=observer,
        )
        self.content_bytes = sum(sizes.values())
        self._workers = [_Worker(self, tid, job) for tid, job in enumerate(jobs)]
        for w in self._workers:
            if w.job.start_gate is not None:
                self.feed.expect_gate(w.tid)
        self.names = names

    def _start(self) -> None:
        self.events.start()
        self.feed.start(range(len(self._workers)))
        for w in self._workers:
            w.thread.start()
        if not self._workers:
            self._finish()

    def _finished(self, tid: int, result: TargetResult) -> None:
        self.events.send(TargetFinished(result))
        with self._lock:
            self._results[tid] = result
            last = len(self._results) == len(self._workers)
        if last:
            self._finish()

    def _finish(self) -> None:
        self.feed.join()
        self.events.send(BatchFinished(self.results, self.feed.failed))
        self.events.stop()
        self._done.set()

    # -- public --------------------------------------------------------------
    @property
    def results(self) -> tuple[TargetResult, ...]:
        """Results so far, in job order (complete once :meth:`wait` returned)."""
        with self._lock:
            return tuple(self._results[i] for i in sorted(self._results))

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> str | None:
        """Why the whole batch failed (source removed, observer's verdict), or None."""
        return self.feed.failed

    @property
    def source_bytes_read(self) -> int:
        """Content bytes read by the reader plus every target's catch-up reads."""
        return self.feed.primary_reads + sum(w.count.extra for w in self._workers)

    def cancel(self, name: str) -> None:
        """Cancel one target by name; it ends as ``cancelled`` with no partition table."""
        for w in self._workers:
            if w.name == name:
                w.cancel_event.set()
                self.feed.stop_target(w.tid)
                return
        raise KeyError(name)

    def cancel_all(self) -> None:
        for w in self._workers:
            w.cancel_event.set()
            self.feed.stop_target(w.tid)

    def wait(self, timeout: float | None = None) -> tuple[TargetResult, ...]:
        """Block until every target ended; raise ``TimeoutError`` after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError("batch still running")
        return self.results


def start_batch(
    jobs: Sequence[Job],
    options: LoadOptions | None = None,
    *,
    on_event: EventCallback | None = None,
    observer: SourceObserver | None = None,
    protect: Sequence[Path] = (),
) -> Batch:
    """Start loading every job's target in the background and return the :class:`Batch`.

    ``protect`` lists folders (the content) whose disk must never be written;
    paths in jobs go through :func:`appliance.drives.open_target` with it.
    """
    batch = Batch(jobs, options or LoadOptions(), on_event, observer, protect)
    batch._start()
    return batch


def run_batch(
    jobs: Sequence[Job], options: LoadOptions | None = None, **kwargs: object
) -> tuple[TargetResult, ...]:
    """Start a batch and wait for it (convenience for tests and scripts)."""
    return start_batch(jobs, options, **kwargs).wait()  # type: ignore[arg-type]
