"""A stand-in station: the :class:`~appliance.service.interface.Station` interface and nothing else.

Used by the service's tests and by ``flashstation run --fake-station`` (the
real-systemd test and anyone trying the service on a laptop). Tests drive it
by calling :meth:`FakeStation.emit` and reading what the service did to it
(``paused``, ``errors``, ``started``/``stopped``). ``hang_file``: once that
file exists, :meth:`status_line` deletes it and blocks forever, as a deadlocked
station would (the real-systemd watchdog test). ``shutdown_after``: that many
seconds after start, call ``on_shutdown`` as the real station does when MENU
is held (the real-systemd test of the operator shutdown).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.config.loader import ConfigProblem
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobSnapshot,
    JobStarted,
    Listener,
    StationEvent,
)


class FakeStation:
    def __init__(
        self,
        *,
        simulate_every: float | None = None,
        hang_file: Path | None = None,
        shutdown_after: float | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.hang_file = hang_file
        self._shutdown: threading.Timer | None = None
        if shutdown_after is not None and on_shutdown is not None:
            self._shutdown = threading.Timer(shutdown_after, on_shutdown)
            self._shutdown.daemon = True
        self.listeners: list[Listener] = []
        self.started = False
        self.stopped = False
        self.paused: str | None = None
        self.errors: list[tuple[str, str]] = []
        self.jobs: dict[str, JobSnapshot] = {}
        self.done = 0
        self.failed = 0
        self.cancelled = 0
        self._simulate_every = simulate_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # -- the Station interface --------------------------------------------------

    def start(self) -> None:
        self.started = True
        if self._simulate_every:
            self._thread = threading.Thread(target=self._simulate, name="fake-station")
            self._thread.start()
        if self._shutdown is not None:
            self._shutdown.start()

    def stop(self) -> None:
        if self._shutdown is not None:
            self._shutdown.cancel()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for job in list(self.jobs):
            self.emit(JobFinished(job, "cancelled", "cancelled: the station is stopping"))
        self.stopped = True

    def status_line(self) -> str:
        if self.hang_file is not None and self.hang_file.exists():
            # a deadlock stand-in for the watchdog test: the caller (main loop) never returns
            self.hang_file.unlink()
            threading.Event().wait()
        state = f"paused ({self.paused})" if self.paused else "ready"
        if self.errors:
            state = f"error: {self.errors[-1][0]}"
        return f"{state}: {len(self.jobs)} loading, {self.done} done, {self.failed} failed"

    def snapshot(self) -> list[JobSnapshot]:
        return list(self.jobs.values())

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def set_paused(self, reason: str | None) -> None:
        self.paused = reason

    def show_config_error(self, problem: ConfigProblem, using: str) -> None:
        self.errors.append((f"bad config, using {using} values", str(problem)))

    # -- driving it ---------------------------------------------------------------

    def emit(self, event: StationEvent) -> None:
        if isinstance(event, JobStarted):
            slot = len(self.jobs) + 1
            self.jobs[event.job] = JobSnapshot(slot, event.job, "write", 0.0, event.capacity, "")
        elif isinstance(event, JobFinished):
            self.jobs.pop(event.job, None)
            if event.result == "done":
                self.done += 1
            elif event.result == "failed":
                self.failed += 1
            else:
                self.cancelled += 1
        for listener in self.listeners:
            listener(event)

    def _simulate(self) -> None:
        """One job per period: start, then finish done on the next tick."""
        batch = "sim"
        self.emit(BatchStarted(batch, "simulated pack", "1"))
        while not self._stop.wait(self._simulate_every):
            if self.paused:
                continue
            for job in list(self.jobs):
                self.emit(JobFinished(job, "done", seconds={"write": 1.0, "verify": 0.5}))
            n = next(self._ids)
            self.emit(JobStarted(f"sim{n}", batch, f"SIMSERIAL{n:06d}", 8 * 10**9, "8GB"))
        self.emit(BatchFinished(batch))
