"""The station thread: take events from the queue, apply them, carry out the effects.

:class:`StationRunner` is the one consumer of :meth:`Station.post`'s queue.
It is also where effects meet the ports: ``StartBatch`` goes to the loader
(which returns at once), cancels too, beeps to the indicator, shutdown runs
the registered hooks (the ledger flush). Observers get a fresh
:class:`~.machine.Snapshot` after every event; they run on this thread and
must only hand the snapshot over (the screen renders on its own thread).

``ForgetPorts`` and ``NumberPort`` (numbering the ports) go to ``slot_numbers``,
which writes one small file (fsync) on this thread: they only happen while no
stick is loading, and the screen renders on its own thread meanwhile.

Two ways to run: :meth:`StationRunner.start` (a daemon thread; real time)
and :meth:`StationRunner.drain` (apply everything queued now, on the
caller's thread; for deterministic tests and the scripted simulator).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.station import events as ev
from appliance.station.effects import (
    Beep,
    CancelAll,
    CancelJob,
    Effect,
    ExportReport,
    ForgetPorts,
    NumberPort,
    PowerOffSlot,
    RunShutdownHooks,
    StartBatch,
)
from appliance.station.machine import Snapshot, Station
from appliance.station.ports import Indicator, Loader, Post, SlotNumbers, Watcher
from appliance.station.states import StationState

log = logging.getLogger(__name__)

IDLE_TICK = 0.25  # seconds between ticks when nothing happens


class StationRunner:
    def __init__(
        self,
        station: Station,
        loader: Loader,
        watchers: list[Watcher] | None = None,
        indicator: Indicator | None = None,
        power_off: Callable[[int], None] | None = None,
    ) -> None:
        self.station = station
        self.loader = loader
        self.watchers = list(watchers or [])
        self.indicator = indicator
        self.power_off = power_off
        self.observers: list[Callable[[Snapshot], None]] = []
        self.shutdown_hooks: list[Callable[[], None]] = []
        #: writes the report (on its own thread) and posts ReportExported; None: not hosted
        self.report_exporter: Callable[[Post], None] | None = None
        #: where port numbers are kept (the hotplug monitor's slot map); None: not hosted
        self.slot_numbers: SlotNumbers | None = None
        self.effects_log: list[Effect] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()

    # -- life ---------------------------------------------------------------------------------

    def open(self) -> StationRunner:
        """Start the watchers and tell the station it is up (on the caller's thread)."""
        for watcher in self.watchers:
            watcher.start(self.station.post)
        if self.station.state is StationState.STARTING:
            self.station.post(ev.Started())
        return self

    def start(self) -> StationRunner:
        self.open()
        return self.run_in_thread()

    def run_in_thread(self) -> StationRunner:
        """Apply events on the station thread from now on (after :meth:`open`)."""
        self._thread = threading.Thread(target=self._run, name="station", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop in reverse order; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for watcher in reversed(self.watchers):
            try:
                watcher.close()
            except Exception:  # a broken watcher must not keep the others open
                log.exception("closing %r", watcher)
        self.loader.close()
        if self.indicator is not None:
            self.indicator.close()

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            deadline = self.station.next_deadline()
            timeout = IDLE_TICK
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - self.station.clock()))
            event = self.station.next_event(timeout)
            self.step(event if event is not None else ev.Tick())
        self.finished.set()

    def drain(self) -> int:
        """Apply every queued event now, then one Tick; return how many were applied."""
        n = 0
        while True:
            event = self.station.next_event(timeout=0)
            if event is None:
                break
            self.step(event)
            n += 1
        self.step(ev.Tick())
        return n

    def step(self, event: ev.Event) -> None:
        try:
            effects = self.station.apply(event)
        except Exception:
            log.exception("station could not apply %r", event)
            return
        for effect in effects:
            self._carry_out(effect)
        snapshot = self.station.snapshot()
        if self.indicator is not None:
            self.indicator.show([str(s.state) for s in snapshot.slots])
        for observer in list(self.observers):
            try:
                observer(snapshot)
            except Exception:
                log.exception("snapshot observer %r", observer)

    def apply_after_close(self, event: ev.Event) -> Snapshot:
        """Apply one event once the runner has stopped (its thread has ended; the loader and
        indicator are closed): on the caller's thread, observers told, no effects carried out.

        For what happens after the orderly stop: the service tells the station that the
        ledger is closed (``ServiceStopped``) or that the power-off failed.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the station thread is still running: post() instead")
        effects = self.station.apply(event)
        if effects:
            log.debug("after close, not carried out: %r", effects)
        snapshot = self.station.snapshot()
        for observer in list(self.observers):
            try:
                observer(snapshot)
            except Exception:
                log.exception("snapshot observer %r", observer)
        return snapshot

    def _carry_out(self, effect: Effect) -> None:
        self.effects_log.append(effect)
        try:
            if isinstance(effect, StartBatch):
                self.loader.start(effect, self.station.post)
            elif isinstance(effect, CancelJob):
                self.loader.cancel(effect.slot)
            elif isinstance(effect, CancelAll):
                self.loader.cancel_all()
            elif isinstance(effect, Beep):
                if self.indicator is not None:
                    self.indicator.beep(effect.what)
            elif isinstance(effect, PowerOffSlot):
                if self.power_off is not None:
                    self.power_off(effect.slot)
            elif isinstance(effect, ExportReport):
                exporter = self.report_exporter
                if exporter is None:
                    self.station.post(ev.ReportExported("failed"))
                else:
                    threading.Thread(
                        target=exporter, args=(self.station.post,), name="report", daemon=True
                    ).start()
            elif isinstance(effect, ForgetPorts):
                if self.slot_numbers is not None:
                    self.slot_numbers.forget()
            elif isinstance(effect, NumberPort):
                if self.slot_numbers is not None and not self.slot_numbers.assign(
                    effect.port, effect.number
                ):
                    log.warning("slot %d not saved: configured in hotplug.slots", effect.number)
            elif isinstance(effect, RunShutdownHooks):
                for hook in self.shutdown_hooks:
                    try:
                        hook()
                    except Exception:
                        log.exception("shutdown hook %r", hook)
                self._stop.set()
        except Exception:
            log.exception("carrying out %r", effect)
