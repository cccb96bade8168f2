"""Hosts the real station (:mod:`appliance.station`) behind the service's Station interface.

The station's state machine reports to observers a fresh snapshot after every
event; it has no job events of its own. Like udiskie's ``Daemon``, this
adapter turns state into events by diffing: a slot entering an active state
(probing, wiping, loading, verifying) is a job started; leaving it for
``done``, ``failed`` or ``removed`` is the job's end. Phase times are measured
here, on the station thread, from the moments the phases changed.

The drive's identity comes from the hotplug ``DriveArrived`` event
(``drive_id``, already a salted hash: no raw serial ever reaches the service);
the ledger hashes it once more with its own salt. A slot with no id gets a
random one, so two unknown drives never look alike.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from appliance.config.loader import ConfigProblem
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobResult,
    JobSnapshot,
    JobStarted,
    Listener,
    StationEvent,
)
from appliance.service.ledger import Totals
from appliance.station import events as ev
from appliance.station.machine import SlotView, Snapshot
from appliance.station.runtime import StationRunner
from appliance.station.states import ACTIVE, FailReason, SlotState

log = logging.getLogger(__name__)

#: the station's phases -> the ledger's duration columns
PHASE_COLUMNS = {"probe": "probe", "wipe": "write", "load": "write", "verify": "verify"}


class StationHost:
    def __init__(
        self,
        runner: StationRunner,
        *,
        clock: Callable[[], float] = time.monotonic,
        stop_timeout: float = 30.0,
    ) -> None:
        self.runner = runner
        self.station = runner.station
        self.clock = clock
        self.stop_timeout = stop_timeout
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._snapshot: Snapshot = self.station.snapshot()
        self._ids: dict[int, str] = {}  # slot -> drive id of the stick in it
        self._jobs: dict[int, _Job] = {}  # slot -> job in progress
        self._batches: dict[int, int] = {}  # batch -> jobs still running
        self._post = self.station.post
        self.station.post = self._intercept  # type: ignore[method-assign]
        runner.observers.append(self._observe)

    # -- the service's Station interface -------------------------------------------------

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        """Shut the station down: jobs cancelled (their slots end ``failed: cancelled``)."""
        self._post(ev.Shutdown())
        if not self.runner.finished.wait(self.stop_timeout):
            log.error("station did not stop within %.0f s", self.stop_timeout)
        self.runner.close()

    def status_line(self) -> str:
        """``systemctl status``: ``ready: 2 loading, 3 done this run, 1287 done in all, 53
        failed in all``.

        "this run" is the grid's count (``run_done``: since the service started), what
        the operator sees on the screen; "in all" is the ledger's all-time totals page
        (failed there counts every stick not loaded: failures, cancelled, interrupted).
        Before the ledger's totals arrive (or with no ledger), the failures are this run's.
        """
        with self._lock:
            snap = self._snapshot
        active = sum(1 for s in snap.slots if s.state in ACTIVE)
        failed = sum(n for _, n in snap.totals_failed)
        line = f"{snap.state}: {active} loading, {snap.run_done} done this run"
        if snap.totals_all_time:
            line += f", {snap.totals_done} done in all, {failed} failed in all"
        else:
            line += f", {failed} failed this run"
        if snap.undervoltage:
            line += ", under-voltage"
        if snap.config_error is not None:
            line += f", bad config {snap.config_error.file}:{snap.config_error.line or '?'}"
        return line

    def snapshot(self) -> list[JobSnapshot]:
        with self._lock:
            snap = self._snapshot
        return [
            JobSnapshot(
                s.number, f"b{s.batch}-s{s.number}", s.phase, s.percent, s.capacity, s.tier or ""
            )
            for s in snap.slots
            if s.state in ACTIVE
        ]

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def set_paused(self, reason: str | None) -> None:
        self._post(ev.Undervoltage() if reason else ev.PowerOk())

    def show_totals(self, totals: Totals) -> None:
        """Post the ledger's totals to the station (read them off the station and UI threads)."""
        self._post(ev.TotalsLoaded(totals.done, failed_reasons(totals)))

    def show_config_error(self, problem: ConfigProblem, using: str) -> None:
        self._post(ev.ConfigError(problem.file, problem.line, f"{problem.path}: {problem.message}"))

    # -- translating --------------------------------------------------------------------------

    def _intercept(self, event: ev.Event) -> None:
        if isinstance(event, ev.DriveArrived):
            with self._lock:
                self._ids[event.slot] = event.drive_id or f"unknown-{secrets.token_hex(8)}"
        self._post(event)

    def _emit(self, event: StationEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("station listener failed on %r", event)

    def _observe(self, snap: Snapshot) -> None:
        """Runs on the station thread after every event."""
        now = self.clock()
        with self._lock:
            self._snapshot = snap
            drive_ids = dict(self._ids)
        for slot in snap.slots:
            job = self._jobs.get(slot.number)
            if job is None and slot.state in ACTIVE:
                self._start_job(slot, snap, drive_ids.get(slot.number), now)
            elif job is not None:
                job.phase_to(slot.phase, now)
                if slot.state not in ACTIVE:
                    self._finish_job(slot, job, now)

    def _start_job(self, slot: SlotView, snap: Snapshot, drive_id: str | None, now: float) -> None:
        if slot.batch not in self._batches:
            self._batches[slot.batch] = 0
            self._emit(BatchStarted(str(slot.batch), snap.content.title, snap.content.version))
        self._batches[slot.batch] += 1
        job = _Job(f"b{slot.batch}-s{slot.number}", slot.batch, now)
        job.phase_to(slot.phase, now)
        self._jobs[slot.number] = job
        serial = drive_id or f"unknown-{secrets.token_hex(8)}"
        self._emit(JobStarted(job.name, str(slot.batch), serial, slot.capacity, slot.tier or ""))

    def _finish_job(self, slot: SlotView, job: _Job, now: float) -> None:
        del self._jobs[slot.number]
        job.phase_to("", now)
        result: JobResult
        if slot.state is SlotState.DONE:
            result, reason = "done", ""
        elif slot.reason is FailReason.CANCELLED:
            result, reason = "cancelled", "cancelled"
        elif slot.state is SlotState.REMOVED:
            result, reason = "failed", "removed during the job"
        else:
            result = "failed"
            reason = _REASONS.get(slot.reason or FailReason.UNKNOWN, "unknown")
        self._emit(
            JobFinished(
                job.name,
                result,
                reason,
                job.seconds,
                tier=slot.tier,
                bytes_written=0,
                bytes_verified=0,
            )
        )
        self._batches[job.batch] -= 1
        if self._batches[job.batch] == 0:
            del self._batches[job.batch]
            self._emit(BatchFinished(str(job.batch)))


# The ledger's reason codes (``ledger.reason_code``) as the station's reasons.
_CODES = {
    "content damaged": FailReason.CONTENT_DAMAGED,
    "content removed": FailReason.CONTENT_REMOVED,
    "fake capacity": FailReason.FAKE_CAPACITY,
    "write-protected": FailReason.READ_ONLY,
    "too small": FailReason.TOO_SMALL,
    "verify mismatch": FailReason.VERIFY_FAILED,
    "removed": FailReason.REMOVED,
    "cancelled": FailReason.CANCELLED,
    "i/o error": FailReason.WRITE_ERROR,
}


def failed_reasons(totals: Totals) -> tuple[tuple[FailReason, int], ...]:
    """Every job that did not load, by the station's reason (what the totals screen lists).

    Cancelled jobs count as cancelled; interrupted ones (the station lost power
    mid-job) and codes without plain words count as "other".
    """
    counts: dict[FailReason, int] = {}
    for code, n in totals.failed_by_reason.items():
        reason = _CODES.get(code, FailReason.UNKNOWN)
        counts[reason] = counts.get(reason, 0) + n
    for reason, n in (
        (FailReason.CANCELLED, totals.cancelled),
        (FailReason.UNKNOWN, totals.interrupted),
    ):
        if n:
            counts[reason] = counts.get(reason, 0) + n
    return tuple(sorted((r, n) for r, n in counts.items() if n))


# Plain reasons that the ledger's reason codes recognise.
_REASONS = {
    FailReason.FAKE_CAPACITY: "fake capacity",
    FailReason.REMOVED: "removed during the job",
    FailReason.READ_ONLY: "write-protected",
    FailReason.TOO_SMALL: "too small",
    FailReason.WRITE_ERROR: "i/o error while writing",
    FailReason.VERIFY_FAILED: "verify mismatch",
    FailReason.CANCELLED: "cancelled",
    FailReason.CONTENT_DAMAGED: "content damaged",
    FailReason.CONTENT_REMOVED: "content removed",
    FailReason.UNKNOWN: "unknown",
}


class _Job:
    def __init__(self, name: str, batch: int, started: float) -> None:
        self.name = name
        self.batch = batch
        self.seconds: dict[str, float] = {}
        self._phase = ""
        self._since = started

    def phase_to(self, phase: str, now: float) -> None:
        if phase == self._phase:
            return
        column = PHASE_COLUMNS.get(self._phase)
        if column:
            self.seconds[column] = self.seconds.get(column, 0.0) + (now - self._since)
        self._phase = phase
        self._since = now
